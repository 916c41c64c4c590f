// Reductions, softmax, log_softmax, layer_norm and rms_norm on CUDA against the CPU backend:
// row reductions (warp and block per row), strided reductions, rows that fit the register
// cache and rows that do not, odd row lengths (scalar path) and non-last softmax axes.
#include <algorithm>
#include <cmath>

#include "cuda/cuda_test_util.h"

namespace loom {
namespace {

using testing::expect_gpu_matches_cpu;
using testing::random_tensor;

struct AxesCase {
  Extents shape;
  std::vector<int64_t> axes;
};

const std::vector<AxesCase> kAxesCases = {
    {{37, 513}, {1}},    {{8, 4096}, {-1}}, {{3, 5000}, {1}},       {{64, 33}, {0}},
    {{4, 6, 7}, {0, 2}}, {{4, 6, 7}, {1}},  {{2, 3, 4, 5}, {1, 2}}, {{2, 3, 4, 5}, {}},
    {{100000}, {}},      {{5, 1, 3}, {1}},  {{6, 7}, {0, 1}},
};

TEST(CudaReduce, SumMeanMaxMinFloat) {
  LOOM_REQUIRE_CUDA();
  for (DType dtype : testing::kFloatDTypes)
    for (const auto& c : kAxesCases)
      for (bool keepdims : {false, true}) {
        Graph g;
        Tensor x = g.placeholder("x", to_shape(c.shape), dtype);
        std::vector<Tensor> outs = {sum(x, c.axes, keepdims), mean(x, c.axes, keepdims),
                                    max(x, c.axes, keepdims), min(x, c.axes, keepdims)};
        // Positive inputs keep sums away from zero, where a relative error means little.
        // sum and mean accumulate `count` terms in f32 in a different order on each device
        // (mean's terms are divided by count); max and min are exact either way.
        int64_t count = 1;
        for (size_t d = 0; d < c.shape.size(); ++d)
          if (c.axes.empty() || std::count(c.axes.begin(), c.axes.end(), int64_t(d)) ||
              std::count(c.axes.begin(), c.axes.end(), int64_t(d) - int64_t(c.shape.size())))
            count *= c.shape[d];
        expect_gpu_matches_cpu(g, {outs[0]}, {{"x", random_tensor(dtype, c.shape, 0.1f, 1.f)}},
                               std::string("sum ") + dtype_name(dtype) + " " + to_string(c.shape) +
                                   " axes " + to_string(c.axes) + (keepdims ? " keepdims" : ""),
                               testing::accumulation_tolerance(dtype, count));
        expect_gpu_matches_cpu(g, {outs[1]}, {{"x", random_tensor(dtype, c.shape, 0.1f, 1.f)}},
                               std::string("mean ") + dtype_name(dtype) + " " + to_string(c.shape) +
                                   " axes " + to_string(c.axes) + (keepdims ? " keepdims" : ""),
                               testing::accumulation_tolerance(dtype, count, 1.0 / double(count)));
        expect_gpu_matches_cpu(
            g, {outs[2], outs[3]}, {{"x", random_tensor(dtype, c.shape, 0.1f, 1.f)}},
            std::string("max/min ") + dtype_name(dtype) + " " + to_string(c.shape) + " axes " +
                to_string(c.axes) + (keepdims ? " keepdims" : ""),
            testing::Tolerance{});
      }
}

TEST(CudaReduce, SumMaxMinInteger) {
  LOOM_REQUIRE_CUDA();
  for (DType dtype : {DType::i32, DType::i64})
    for (const auto& c : kAxesCases) {
      Graph g;
      Tensor x = g.placeholder("x", to_shape(c.shape), dtype);
      expect_gpu_matches_cpu(g, {sum(x, c.axes), max(x, c.axes), min(x, c.axes)},
                             {{"x", random_tensor(dtype, c.shape, -50, 50)}},
                             std::string("reduce ") + dtype_name(dtype) + " " + to_string(c.shape) +
                                 " axes " + to_string(c.axes));
    }
}

TEST(CudaReduce, Argmax) {
  LOOM_REQUIRE_CUDA();
  for (DType dtype : {DType::f32, DType::f16, DType::bf16, DType::i32})
    for (const auto& [shape, axis] : std::vector<std::pair<Extents, int64_t>>{{{37, 513}, 1},
                                                                              {{5, 70000}, -1},
                                                                              {{1, 49152}, -1},
                                                                              {{3, 4096}, 1},
                                                                              {{64, 33}, 0},
                                                                              {{4, 6, 7}, 1},
                                                                              {{9}, 0}}) {
      Graph g;
      Tensor x = g.placeholder("x", to_shape(shape), dtype);
      expect_gpu_matches_cpu(g, {argmax(x, axis), argmax(x, axis, true)},
                             {{"x", random_tensor(dtype, shape, -1000, 1000)}},
                             std::string("argmax ") + dtype_name(dtype) + " " + to_string(shape));
    }
}

// Long rows (a block per row): ties go to the lowest index and the first NaN wins, as on the
// CPU, wherever they fall among the block's threads.
TEST(CudaReduce, ArgmaxOfLongRowsKeepsTiesAndNaNRules) {
  LOOM_REQUIRE_CUDA();
  const int64_t len = 49152;
  std::vector<float> v(size_t(3 * len), 1.f);
  v[size_t(5000)] = 7.f;         // row 0: one maximum ...
  v[size_t(40000)] = 7.f;        // ... twice: the first
  v[size_t(len + 30000)] = NAN;  // row 1: the first NaN beats everything
  v[size_t(len + 31000)] = NAN;
  v[size_t(len + 100)] = 9.f;
  // row 2: all equal: index 0
  Graph g;
  Tensor x = g.placeholder("x", {3, len});
  expect_gpu_matches_cpu(g, {argmax(x, -1)}, {{"x", TensorData::from_vector<float>(v, {3, len})}},
                         "argmax rules");
}

// softmax (or log_softmax) along `axis` in double precision.
std::vector<double> softmax_reference(const TensorData& x, int64_t axis, bool log) {
  std::vector<double> v = testing::to_doubles(x), out(v.size());
  const Extents& shape = x.shape();
  int a = normalize_axis(axis, x.rank(), "softmax");
  int64_t outer = 1, n = shape[size_t(a)], inner = 1;
  for (int d = 0; d < a; ++d) outer *= shape[size_t(d)];
  for (int d = a + 1; d < x.rank(); ++d) inner *= shape[size_t(d)];
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      auto at = [&](int64_t j) { return size_t((o * n + j) * inner + i); };
      double m = -INFINITY, sum = 0;
      for (int64_t j = 0; j < n; ++j) m = std::max(m, v[at(j)]);
      for (int64_t j = 0; j < n; ++j) sum += std::exp(v[at(j)] - m);
      for (int64_t j = 0; j < n; ++j)
        out[at(j)] = log ? v[at(j)] - m - std::log(sum) : std::exp(v[at(j)] - m) / sum;
    }
  return out;
}

TEST(CudaNorm, SoftmaxAndLogSoftmax) {
  LOOM_REQUIRE_CUDA();
  const std::vector<std::pair<Extents, int64_t>> cases = {
      {{16, 4096}, -1}, {{3, 37}, -1},  {{2, 50000}, 1}, {{2, 70001}, 1},
      {{7, 1}, -1},     {{4, 9, 5}, 1}, {{6, 130}, 0},   {{300, 1024}, -1}};
  for (DType dtype : testing::kFloatDTypes)
    for (const auto& [shape, axis] : cases) {
      Graph g;
      Tensor x = g.placeholder("x", to_shape(shape), dtype);
      TensorData xd = random_tensor(dtype, shape, -8, 8);
      std::string what = std::string("softmax ") + dtype_name(dtype) + " " + to_string(shape) +
                         " axis " + std::to_string(axis);
      std::vector<Tensor> outs = {softmax(x, axis), log_softmax(x, axis)};
      // Both devices sum a row's n exponentials in f32, in different orders: the row's
      // elements share that sum's rounding error. Against the CPU and against double.
      int64_t n = shape[size_t(normalize_axis(axis, int(shape.size()), "softmax"))];
      const testing::Tolerance tol = testing::normalized_tolerance(dtype, n);
      expect_gpu_matches_cpu(g, outs, {{"x", xd}}, what, tol);
      auto got = testing::run_on(g, outs, {{"x", xd}}, testing::gpu(), {});
      testing::expect_close(got[0], softmax_reference(xd, axis, false), tol, what + " vs double");
      testing::expect_close(got[1], softmax_reference(xd, axis, true), tol,
                            what + " (log) vs double");
    }
}

TEST(CudaNorm, SoftmaxOfMaskedRow) {
  LOOM_REQUIRE_CUDA();
  // -inf entries (a causal mask) must give exact zeros, not NaN.
  Graph g;
  Tensor x = g.placeholder("x", {2, 8}, DType::f32);
  std::vector<float> values(16);
  for (int i = 0; i < 16; ++i) values[size_t(i)] = (i % 8) > 4 ? -INFINITY : float(i) * 0.1f;
  expect_gpu_matches_cpu(g, {softmax(x)},
                         {{"x", TensorData::from_floats(values, DType::f32, {2, 8})}},
                         "masked softmax");
}

TEST(CudaNorm, LayerNormAndRmsNorm) {
  LOOM_REQUIRE_CUDA();
  for (DType dtype : testing::kFloatDTypes)
    for (Extents shape : {Extents{16, 4096}, Extents{5, 37}, Extents{2, 3, 20000}, Extents{1, 8},
                          Extents{300, 768}})
      for (int params = 0; params < 4; ++params) {
        bool has_weight = params & 1, has_bias = params & 2;
        int64_t d = shape.back();
        Graph g;
        Tensor x = g.placeholder("x", to_shape(shape), dtype);
        Tensor w = g.placeholder("w", {d}, dtype);
        Tensor b = g.placeholder("b", {d}, dtype);
        std::optional<Tensor> ow, ob;
        if (has_weight) ow = w;
        if (has_bias) ob = b;
        std::vector<Tensor> outs = {layer_norm(x, ow, ob, 1e-5)};
        if (!has_bias) outs.push_back(rms_norm(x, ow, 1e-6));
        Feeds feeds{{"x", random_tensor(dtype, shape, -2, 2)}};
        if (has_weight) feeds["w"] = random_tensor(dtype, {d}, 0.5f, 1.5f);
        if (has_bias) feeds["b"] = random_tensor(dtype, {d}, -1, 1);
        // Mean and variance sum d terms in f32 in a different order on each device.
        expect_gpu_matches_cpu(g, outs, feeds,
                               std::string("norm ") + dtype_name(dtype) + " " + to_string(shape) +
                                   (has_weight ? " weight" : "") + (has_bias ? " bias" : ""),
                               testing::normalized_tolerance(dtype, d));
      }
}

}  // namespace
}  // namespace loom
