// softmax, log_softmax, layer_norm and rms_norm against double-precision references, for
// f32/f16/bf16, along last and non-last axes, with and without weight and bias.
#include <cmath>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "test_util.h"

namespace loom {
namespace {

using testing::random_tensor;
using testing::to_doubles;
using testing::tolerance_for;

// Softmax (or its log) of x viewed as [outer, n, inner] along the middle dim.
std::vector<double> softmax_reference(const std::vector<double>& x, const Extents& shape, int axis,
                                      bool log) {
  int64_t outer = 1, inner = 1;
  for (int d = 0; d < axis; ++d) outer *= shape[size_t(d)];
  for (size_t d = size_t(axis) + 1; d < shape.size(); ++d) inner *= shape[d];
  const int64_t n = shape[size_t(axis)];
  std::vector<double> out(x.size());
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      auto at = [&](int64_t k) { return size_t((o * n + k) * inner + i); };
      double mx = -INFINITY;
      for (int64_t k = 0; k < n; ++k) mx = std::max(mx, x[at(k)]);
      double sum = 0;
      for (int64_t k = 0; k < n; ++k) sum += std::exp(x[at(k)] - mx);
      for (int64_t k = 0; k < n; ++k)
        out[at(k)] = log ? x[at(k)] - mx - std::log(sum) : std::exp(x[at(k)] - mx) / sum;
    }
  return out;
}

// layer_norm (rms = false) or rms_norm over the last axis.
std::vector<double> norm_reference(const std::vector<double>& x, int64_t d, bool rms,
                                   const std::vector<double>* weight,
                                   const std::vector<double>* bias, double eps) {
  std::vector<double> out(x.size());
  for (size_t r = 0; r < x.size() / size_t(d); ++r) {
    const double* row = x.data() + r * size_t(d);
    double mean = 0;
    if (!rms) {
      for (int64_t i = 0; i < d; ++i) mean += row[i];
      mean /= double(d);
    }
    double var = 0;
    for (int64_t i = 0; i < d; ++i) var += (row[i] - mean) * (row[i] - mean);
    var /= double(d);
    for (int64_t i = 0; i < d; ++i) {
      double v = (row[i] - mean) / std::sqrt(var + eps);
      if (weight) v *= (*weight)[size_t(i)];
      if (bias) v += (*bias)[size_t(i)];
      out[r * size_t(d) + size_t(i)] = v;
    }
  }
  return out;
}

class NormTest : public ::testing::TestWithParam<DType> {};

TEST_P(NormTest, SoftmaxAndLogSoftmax) {
  const DType dtype = GetParam();
  struct Case {
    Extents shape;
    int64_t axis;
  };
  const std::vector<Case> cases = {{{4, 37}, -1},   {{3, 5, 7}, 1}, {{3, 5, 7}, 0},
                                   {{3, 5, 7}, -1}, {{2, 1, 9}, 1}, {{256, 300}, 1},
                                   {{300, 256}, 0}, {{33}, 0}};
  for (bool log : {false, true})
    for (const auto& c : cases) {
      // A wide range checks that the max is subtracted before exp.
      TensorData x = random_tensor(dtype, c.shape, -8.f, 8.f);
      Graph g;
      Tensor p = g.placeholder("x", to_shape(c.shape), dtype);
      Tensor y = log ? log_softmax(p, c.axis) : softmax(p, c.axis);
      TensorData got = testing::run_once(g, {y}, {{"x", x}}).at(0);
      const int axis = int(c.axis < 0 ? c.axis + int64_t(c.shape.size()) : c.axis);
      EXPECT_EQ(got.dtype(), dtype);
      ASSERT_EQ(got.shape(), c.shape);
      std::string what = std::string(log ? "log_softmax " : "softmax ") + to_string(c.shape) +
                         " axis " + std::to_string(c.axis);
      testing::expect_close(got, softmax_reference(to_doubles(x), c.shape, axis, log),
                            tolerance_for(dtype), what);
    }
}

TEST_P(NormTest, SoftmaxOfLargeValuesStaysFinite) {
  const DType dtype = GetParam();
  // 1000 overflows exp in every dtype; 60000 is close to f16's largest value.
  double big = dtype == DType::f16 ? 60000 : 1000;
  TensorData x =
      TensorData::from_floats({float(big), float(big - 1), float(big - 2), 0.f}, dtype, {1, 4});
  Graph g;
  Tensor p = g.placeholder("x", {1, 4}, dtype);
  auto got = testing::run_once(g, {softmax(p), log_softmax(p)}, {{"x", x}});
  auto xs = to_doubles(x);
  testing::expect_close(got[0], softmax_reference(xs, {1, 4}, 1, false), tolerance_for(dtype));
  testing::expect_close(got[1], softmax_reference(xs, {1, 4}, 1, true), tolerance_for(dtype));
}

// Attention masks write -inf: those entries must come out exactly 0 (and -inf in log space).
TEST_P(NormTest, MaskedEntriesAreZero) {
  const DType dtype = GetParam();
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<float> values(2 * 40);
  for (size_t i = 0; i < values.size(); ++i) values[i] = float(i % 7) * 0.25f - 0.5f;
  for (size_t i : {3u, 17u, 39u, 40u, 41u, 60u}) values[i] = -inf;
  values[70] = -200.f;  // far below the row max but finite
  TensorData x = TensorData::from_floats(values, dtype, {2, 40});
  Graph g;
  Tensor p = g.placeholder("x", {2, 40}, dtype);
  auto got = testing::run_once(g, {softmax(p), log_softmax(p)}, {{"x", x}});
  auto xs = to_doubles(x);
  testing::expect_close(got[0], softmax_reference(xs, {2, 40}, 1, false), tolerance_for(dtype));
  testing::expect_close(got[1], softmax_reference(xs, {2, 40}, 1, true), tolerance_for(dtype));
  auto probs = got[0].to_floats();
  for (size_t i : {3u, 17u, 39u, 40u, 41u, 60u}) EXPECT_EQ(probs[i], 0.f) << i;
}

TEST_P(NormTest, LayerNorm) {
  const DType dtype = GetParam();
  for (const Extents& shape : {Extents{6, 33}, Extents{2, 3, 64}, Extents{1}, Extents{256, 300}})
    for (bool has_weight : {false, true})
      for (bool has_bias : {false, true}) {
        const int64_t d = shape.back();
        // Rows with a non-zero mean check that it is taken out.
        TensorData x = random_tensor(dtype, shape, -1.f, 3.f);
        TensorData w = random_tensor(dtype, {d}, 0.5f, 1.5f);
        TensorData b = random_tensor(dtype, {d});
        Graph g;
        Tensor px = g.placeholder("x", to_shape(shape), dtype);
        std::optional<Tensor> pw, pb;
        Feeds feeds{{"x", x}};
        if (has_weight) {
          pw = g.placeholder("w", {d}, dtype);
          feeds["w"] = w;
        }
        if (has_bias) {
          pb = g.placeholder("b", {d}, dtype);
          feeds["b"] = b;
        }
        TensorData got = testing::run_once(g, {layer_norm(px, pw, pb, 1e-5)}, feeds).at(0);
        auto wd = to_doubles(w), bd = to_doubles(b);
        auto want = norm_reference(to_doubles(x), d, false, has_weight ? &wd : nullptr,
                                   has_bias ? &bd : nullptr, 1e-5);
        ASSERT_EQ(got.shape(), shape);
        // A row of one element normalises to 0 (plus bias): compare absolutely.
        std::string what = "layer_norm " + to_string(shape) + (has_weight ? " weight" : "") +
                           (has_bias ? " bias" : "");
        testing::expect_close(got, want, tolerance_for(dtype), what);
      }
}

TEST_P(NormTest, RmsNorm) {
  const DType dtype = GetParam();
  for (const Extents& shape : {Extents{6, 33}, Extents{2, 3, 64}, Extents{5, 1}, Extents{256, 300}})
    for (bool has_weight : {false, true}) {
      const int64_t d = shape.back();
      TensorData x = random_tensor(dtype, shape);
      TensorData w = random_tensor(dtype, {d}, 0.5f, 1.5f);
      Graph g;
      Tensor px = g.placeholder("x", to_shape(shape), dtype);
      std::optional<Tensor> pw;
      Feeds feeds{{"x", x}};
      if (has_weight) {
        pw = g.placeholder("w", {d}, dtype);
        feeds["w"] = w;
      }
      TensorData got = testing::run_once(g, {rms_norm(px, pw, 1e-6)}, feeds).at(0);
      auto wd = to_doubles(w);
      auto want = norm_reference(to_doubles(x), d, true, has_weight ? &wd : nullptr, nullptr, 1e-6);
      ASSERT_EQ(got.shape(), shape);
      testing::expect_close(got, want, tolerance_for(dtype),
                            "rms_norm " + to_string(shape) + (has_weight ? " weight" : ""));
    }
}

// eps matters when a row is (near) constant: it bounds the scale.
TEST_P(NormTest, EpsIsApplied) {
  const DType dtype = GetParam();
  TensorData x = TensorData::from_floats({0.5f, 0.5f, 0.5f, 0.5f}, dtype, {1, 4});
  Graph g;
  Tensor p = g.placeholder("x", {1, 4}, dtype);
  auto got = testing::run_once(
      g, {rms_norm(p, std::nullopt, 0.75), layer_norm(p, std::nullopt, std::nullopt, 0.25)},
      {{"x", x}});
  // rms: 0.5 / sqrt(0.25 + 0.75) = 0.5; layer_norm of a constant row is 0.
  testing::expect_close(got[0], {0.5, 0.5, 0.5, 0.5}, tolerance_for(dtype));
  for (float v : got[1].to_floats()) EXPECT_EQ(v, 0.f);
}

TEST_P(NormTest, SymbolicRows) {
  const DType dtype = GetParam();
  Graph g;
  Tensor x = g.placeholder("x", {"seq", 16}, dtype);
  Tensor w = g.placeholder("w", {16}, dtype);
  Tensor r = rms_norm(x, w);
  Tensor s = softmax(x, 0);
  EXPECT_EQ(r.shape(), (Shape{"seq", 16}));
  EXPECT_EQ(s.shape(), (Shape{"seq", 16}));
  for (int64_t seq : {1, 7}) {
    TensorData xd = random_tensor(dtype, {seq, 16}), wd = random_tensor(dtype, {16});
    auto got = testing::run_once(g, {r, s}, {{"x", xd}, {"w", wd}});
    auto wv = to_doubles(wd);
    testing::expect_close(got[0], norm_reference(to_doubles(xd), 16, true, &wv, nullptr, 1e-6),
                          tolerance_for(dtype), "rms_norm");
    testing::expect_close(got[1], softmax_reference(to_doubles(xd), {seq, 16}, 0, false),
                          tolerance_for(dtype), "softmax");
  }
}

INSTANTIATE_TEST_SUITE_P(Floats, NormTest, ::testing::Values(DType::f32, DType::f16, DType::bf16),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

template <class Fn>
void expect_error(Fn&& fn, ErrorKind kind, std::vector<std::string> parts) {
  try {
    fn();
    ADD_FAILURE() << "no error thrown";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), kind) << e.what();
    for (const auto& p : parts)
      EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what() << " lacks " << p;
  }
}

TEST(NormErrors, AxisOutOfRange) {
  Graph g;
  Tensor x = g.placeholder("x", {3, 5});
  expect_error([&] { softmax(x, 2); }, ErrorKind::shape, {"softmax", "[3, 5]", "axis 2"});
  expect_error([&] { log_softmax(x, -3); }, ErrorKind::shape, {"log_softmax", "axis -3"});
  Tensor scalar = g.placeholder("s", {});
  expect_error([&] { softmax(scalar); }, ErrorKind::shape, {"softmax"});
  expect_error([&] { layer_norm(scalar); }, ErrorKind::shape, {"layer_norm"});
  expect_error([&] { rms_norm(scalar); }, ErrorKind::shape, {"rms_norm"});
}

TEST(NormErrors, WeightShapes) {
  Graph g;
  Tensor x = g.placeholder("x", {3, 5});
  Tensor w4 = g.placeholder("w4", {4});
  Tensor w35 = g.placeholder("w35", {3, 5});
  Tensor w5 = g.placeholder("w5", {5});
  expect_error([&] { layer_norm(x, w4); }, ErrorKind::shape, {"layer_norm", "[3, 5]", "[4]"});
  expect_error([&] { layer_norm(x, w5, w4); }, ErrorKind::shape, {"layer_norm", "[4]"});
  expect_error([&] { rms_norm(x, w35); }, ErrorKind::shape, {"rms_norm", "[3, 5]"});
  EXPECT_EQ(layer_norm(x, w5, w5).shape(), (Shape{3, 5}));
}

TEST(NormErrors, DTypes) {
  Graph g;
  Tensor i = g.placeholder("i", {3, 5}, DType::i32);
  Tensor x = g.placeholder("x", {3, 5}, DType::f32);
  Tensor w16 = g.placeholder("w16", {5}, DType::f16);
  expect_error([&] { softmax(i); }, ErrorKind::dtype, {"softmax", "i32"});
  expect_error([&] { layer_norm(i); }, ErrorKind::dtype, {"layer_norm"});
  expect_error([&] { rms_norm(x, w16); }, ErrorKind::dtype, {"rms_norm", "f16"});
  expect_error([&] { layer_norm(x, std::nullopt, w16); }, ErrorKind::dtype, {"layer_norm"});
}

TEST(NormErrors, NegativeEps) {
  Graph g;
  Tensor x = g.placeholder("x", {3, 5});
  expect_error([&] { rms_norm(x, std::nullopt, -1.0); }, ErrorKind::value, {"rms_norm", "eps"});
  expect_error([&] { layer_norm(x, std::nullopt, std::nullopt, -1e-5); }, ErrorKind::value,
               {"layer_norm"});
}

}  // namespace
}  // namespace loom
