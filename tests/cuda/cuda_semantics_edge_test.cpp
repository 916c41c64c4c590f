// Where the CUDA kernels used to disagree with the CPU's: arange into narrow integers
// (saturating casts), rope at an offset whose int64 sum overflows, matmul with K = 0 and a
// bias, argmax without an axis attribute, layer_norm / rms_norm of rows far from zero, the
// shared integer and NaN rules at their edges, and row kernels with more than 2^31 - 1 rows.
// Each compares the GPU elementwise with the CPU (and, for the norms, with float64).
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "cuda/cuda_test_util.h"

namespace loom {
namespace {

using testing::gpu;
using testing::run_on;
using testing::to_doubles;

// Elementwise |got - want| <= atol + rtol * |want|; NaN matches only NaN.
void expect_elementwise(const TensorData& got_data, const std::vector<double>& want, double atol,
                        double rtol, const std::string& what) {
  std::vector<double> got = to_doubles(got_data);
  ASSERT_EQ(got.size(), want.size()) << what;
  int reported = 0;
  for (size_t i = 0; i < got.size() && reported < 5; ++i) {
    bool ok;
    if (std::isnan(want[i]))
      ok = std::isnan(got[i]);
    else if (std::isinf(want[i]))
      ok = got[i] == want[i];
    else
      ok = std::abs(got[i] - want[i]) <= atol + rtol * std::abs(want[i]);
    if (!ok) {
      ++reported;
      ADD_FAILURE() << what << ": element " << i << " is " << got[i] << " on the GPU, " << want[i]
                    << " on the CPU";
    }
  }
}

// Runs the graph on both backends and compares every output elementwise.
void expect_gpu_equals_cpu(const Graph& g, const std::vector<Tensor>& outputs, const Feeds& feeds,
                           double atol, double rtol, const std::string& what) {
  std::vector<TensorData> want = run_on(g, outputs, feeds, Device::cpu(), {});
  std::vector<TensorData> got = run_on(g, outputs, feeds, gpu(), {});
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_EQ(got[i].dtype(), want[i].dtype()) << what;
    ASSERT_EQ(got[i].shape(), want[i].shape()) << what;
    if (!is_float(want[i].dtype())) {  // integers and bool: the same bytes (floats lose bits)
      const auto* g_bytes = static_cast<const uint8_t*>(got[i].contiguous().data());
      const auto* w_bytes = static_cast<const uint8_t*>(want[i].contiguous().data());
      const size_t element = storage_bytes(want[i].dtype(), 1);
      for (size_t e = 0; e < size_t(want[i].numel()); ++e)
        if (std::memcmp(g_bytes + e * element, w_bytes + e * element, element) != 0) {
          ADD_FAILURE() << what << " (output " << i << "): element " << e << " differs";
          break;
        }
      continue;
    }
    expect_elementwise(got[i], to_doubles(want[i]), atol, rtol,
                       what + " (output " + std::to_string(i) + ")");
  }
}

TEST(CudaSemanticsEdge, ArangeIntoNarrowIntegersSaturatesLikeTheCpu) {
  LOOM_REQUIRE_CUDA();
  struct Case {
    double start, stop, step;
    DType dtype;
  };
  for (const Case& c : std::vector<Case>{{-300, 300, 7, DType::i8},
                                         {-300, 300, 7.5, DType::u8},
                                         {400, -400, -13, DType::u8},
                                         {2147483000.0, 2147484000.0, 100.5, DType::i32},
                                         {-3e9, 3e9, 1e8, DType::i32},
                                         {-70000, 70000, 999.5, DType::f16}}) {
    Graph g;
    Tensor y = arange(g, c.start, c.stop, c.step, c.dtype);
    expect_gpu_equals_cpu(
        g, {y}, {}, 0, 0,
        std::string("arange into ") + dtype_name(c.dtype) + " from " + std::to_string(c.start));
  }
}

TEST(CudaSemanticsEdge, CastOfEdgeValuesMatchesTheCpu) {
  LOOM_REQUIRE_CUDA();
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<float> values = {NAN,   inf,     -inf,    0.f,      -0.f,   0.99f,   -0.99f,
                               127.f, 127.99f, 128.f,   -129.f,   255.5f, 256.f,   -1.5f,
                               3e9f,  -3e9f,   9.3e18f, -9.3e18f, 1e30f,  65504.f, 65520.f};
  const Extents shape = {int64_t(values.size())};
  for (DType to :
       {DType::i8, DType::u8, DType::i32, DType::i64, DType::boolean, DType::f16, DType::bf16}) {
    Graph g;
    Tensor x = g.placeholder("x", to_shape(shape));
    expect_gpu_equals_cpu(g, {cast(x, to)},
                          {{"x", TensorData::from_floats(values, DType::f32, shape)}}, 0, 0,
                          std::string("cast f32 -> ") + dtype_name(to));
  }
}

TEST(CudaSemanticsEdge, IntegerDivisionPowAndNaNExtremesMatchTheCpu) {
  LOOM_REQUIRE_CUDA();
  {
    // Every int8 pair: x / 0, -128 / -1, negative exponents, wrapping products.
    std::vector<float> a, b;
    for (int i = -128; i < 128; ++i)
      for (int j = -128; j < 128; ++j) a.push_back(float(i)), b.push_back(float(j));
    const Extents shape = {int64_t(a.size())};
    for (DType dtype : {DType::i8, DType::i32, DType::u8}) {  // u8 last: it remaps the values
      if (dtype == DType::u8)
        for (auto* v : {&a, &b})
          for (auto& x : *v) x = float(uint8_t(int8_t(x)));
      Graph g;
      Tensor x = g.placeholder("a", to_shape(shape), dtype);
      Tensor y = g.placeholder("b", to_shape(shape), dtype);
      expect_gpu_equals_cpu(g, {div(x, y), pow(x, y), mul(x, y), add(x, y), sub(x, y)},
                            {{"a", TensorData::from_floats(a, dtype, shape)},
                             {"b", TensorData::from_floats(b, dtype, shape)}},
                            0, 0, std::string("integer arithmetic ") + dtype_name(dtype));
    }
  }
  {
    std::vector<int32_t> a = {std::numeric_limits<int32_t>::min(), 7, -7, 0, 5};
    std::vector<int32_t> b = {-1, 0, 2, 0, -1};
    Graph g;
    Tensor x = g.placeholder("a", {5}, DType::i32);
    Tensor y = g.placeholder("b", {5}, DType::i32);
    expect_gpu_equals_cpu(
        g, {div(x, y), neg(x), abs(x)},
        {{"a", TensorData::from_vector(a, {5})}, {"b", TensorData::from_vector(b, {5})}}, 0, 0,
        "i32 division edges");
  }
  for (DType dtype : testing::kFloatDTypes) {
    std::vector<float> a = {NAN, 1.f, NAN, -2.f, 3.f, -0.f};
    std::vector<float> b = {1.f, NAN, NAN, 3.f, -2.f, 0.f};
    Graph g;
    Tensor x = g.placeholder("a", {6}, dtype);
    Tensor y = g.placeholder("b", {6}, dtype);
    expect_gpu_equals_cpu(g, {maximum(x, y), minimum(x, y), relu(x)},
                          {{"a", TensorData::from_floats(a, dtype, {6})},
                           {"b", TensorData::from_floats(b, dtype, {6})}},
                          0, 0, std::string("NaN extremes ") + dtype_name(dtype));
  }
}

TEST(CudaSemanticsEdge, RopeAtAnOffsetNearInt64MaxMatchesTheCpu) {
  LOOM_REQUIRE_CUDA();
  // offset + s overflows int64 for s >= 4: the GPU used to add in int64 (undefined, in
  // practice a negative position) where the CPU adds doubles.
  const int64_t offset_value = std::numeric_limits<int64_t>::max() - 3;
  for (bool interleaved : {false, true}) {
    const Extents shape = {2, 8, 16};
    Graph g;
    Tensor x = g.placeholder("x", to_shape(shape));
    Tensor offset = g.placeholder("offset", {}, DType::i64);
    RopeOptions options;
    options.scale = 1e-18;  // positions near 9.22: angles of a few radians
    options.interleaved = interleaved;
    expect_gpu_equals_cpu(
        g, {rope(x, offset, options)},
        {{"x", testing::random_tensor(DType::f32, shape)},
         {"offset", TensorData::from_vector<int64_t>({offset_value}, {})}},
        2e-6, 2e-6,
        std::string("rope at offset INT64_MAX - 3") + (interleaved ? " interleaved" : ""));
  }
}

TEST(CudaSemanticsEdge, MatmulWithKZeroGivesTheBiasOrZeros) {
  LOOM_REQUIRE_CUDA();
  for (DType dtype : testing::kFloatDTypes)
    for (const Extents& a_shape : {Extents{3, 0}, Extents{2, 3, 0}, Extents{33, 0}}) {
      Graph g;
      Tensor a = g.placeholder("a", to_shape(a_shape), dtype);
      Tensor b = g.placeholder("b", {0, 7}, dtype);
      Tensor bias = g.placeholder("bias", {7}, dtype);
      // The fused form (the fuse_matmul_bias pass makes it from matmul + bias).
      Tensor with_bias = g.add_node1("matmul", {a, b, bias}, {});
      expect_gpu_equals_cpu(
          g, {with_bias, matmul(a, b), add(matmul(a, b), bias)},
          {{"a", TensorData::zeros(dtype, a_shape)},
           {"b", TensorData::zeros(dtype, {0, 7})},
           {"bias", testing::random_tensor(dtype, {7}, -4.f, 4.f)}},
          0, 0, std::string("matmul k = 0 ") + dtype_name(dtype) + " " + to_string(a_shape));
    }
}

TEST(CudaSemanticsEdge, ArgmaxWithoutAnAxisAttributeMatchesTheCpu) {
  LOOM_REQUIRE_CUDA();
  for (const Extents& shape : {Extents{5, 7}, Extents{300, 2}, Extents{9}}) {
    Graph g;
    Tensor x = g.placeholder("x", to_shape(shape));
    Tensor y = g.add_node1("argmax", {x}, {});
    expect_gpu_equals_cpu(g, {y}, {{"x", testing::random_tensor(DType::f32, shape, -100, 100)}}, 0,
                          0, "argmax without axis " + to_string(shape));
  }
}

// Rows of mean 1e4 and spread 1: statistics summed in f32 lose the mean's low bits.
std::vector<double> norm_reference(const std::vector<double>& x, int64_t d, bool rms, double eps) {
  std::vector<double> y(x.size());
  for (size_t r = 0; r < x.size() / size_t(d); ++r) {
    const double* row = x.data() + r * size_t(d);
    double mean = 0;
    if (!rms) {
      for (int64_t i = 0; i < d; ++i) mean += row[i];
      mean /= double(d);
    }
    double var = 0;
    for (int64_t i = 0; i < d; ++i) var += (row[i] - mean) * (row[i] - mean);
    const double scale = 1.0 / std::sqrt(var / double(d) + eps);
    for (int64_t i = 0; i < d; ++i) y[r * size_t(d) + size_t(i)] = (row[i] - mean) * scale;
  }
  return y;
}

TEST(CudaSemanticsEdge, NormsOfRowsFarFromZeroMatchFloat64) {
  LOOM_REQUIRE_CUDA();
  for (int64_t d : {4096, 1000, 7, 40000}) {  // vector and scalar paths, rows past the cache
    const Extents shape = {16, d};
    std::normal_distribution<float> dist(0.f, 1.f);
    std::vector<float> values(size_t(numel(shape)));
    for (auto& v : values) v = 1e4f + dist(testing::rng());
    TensorData data = TensorData::from_floats(values, DType::f32, shape);
    Graph g;
    Tensor x = g.placeholder("x", to_shape(shape));
    auto got = run_on(g, {layer_norm(x), rms_norm(x)}, {{"x", data}}, gpu(), {});
    const std::vector<double> xd = to_doubles(data);
    expect_elementwise(got.at(0), norm_reference(xd, d, false, 1e-5), 1e-6, 1e-6,
                       "layer_norm d = " + std::to_string(d));
    expect_elementwise(got.at(1), norm_reference(xd, d, true, 1e-6), 0, 1e-6,
                       "rms_norm d = " + std::to_string(d));
  }
}

// softmax, log_softmax, rms_norm and layer_norm of 2049 * group rows of width 1 in bf16,
// checked by values known without a CPU run (softmax of one element is 1, log_softmax 0,
// rms_norm of 0.5 is 1 in bf16, layer_norm of one element is its bias): the last rows, and
// min and max over all rows (reduced as [2049, group], a block per row).
void check_width_one_rows(int64_t group) {
  const int64_t rows = 2049 * group;
  TensorData x_data = TensorData::empty(DType::bf16, {rows, 1});
  {
    const uint16_t half_bits = 0x3f00;  // 0.5 in bf16
    auto* p = static_cast<uint16_t*>(x_data.data());
    for (int64_t i = 0; i < rows; ++i) p[i] = half_bits;
  }
  Graph g;
  Tensor x = g.placeholder("x", {rows, 1}, DType::bf16);
  Tensor weight = g.constant(TensorData::from_floats({1.f}, DType::bf16, {1}));
  Tensor bias = g.constant(TensorData::from_floats({0.75f}, DType::bf16, {1}));
  const std::vector<Tensor> ys = {softmax(x, -1), log_softmax(x, -1), rms_norm(x),
                                  layer_norm(x, weight, bias)};
  const std::vector<float> want = {1.f, 0.f, 1.f, 0.75f};
  std::vector<Tensor> outputs;
  for (const Tensor& y : ys) {
    outputs.push_back(slice(y, {0}, {rows - 8}, {rows}));
    Tensor grid = reshape(y, {2049, group});
    outputs.push_back(min(min(grid, {1})));
    outputs.push_back(max(max(grid, {1})));
  }
  auto got = run_on(g, outputs, {{"x", x_data}}, gpu(), {});
  const char* names[] = {"softmax", "log_softmax", "rms_norm", "layer_norm"};
  for (size_t k = 0; k < ys.size(); ++k)
    for (size_t j = 0; j < 3; ++j)
      for (float v : got.at(3 * k + j).to_floats())
        EXPECT_EQ(v, want[k]) << names[k]
                              << (j == 0   ? " last rows"
                                  : j == 1 ? " min"
                                           : " max")
                              << " of " << rows << " rows";
}

TEST(CudaSemanticsEdge, RowKernelsOfManyWidthOneRows) {
  LOOM_REQUIRE_CUDA();
  check_width_one_rows(int64_t(1) << 10);
}

// 2049 * 2^20 rows: 2^20 + 1 of them past the grid's limit of 2^31 - 1 blocks, which the row
// kernels used to leave unwritten. Large on purpose but kept cheap: 4 GiB per bf16 tensor,
// about 20 GiB of GPU memory in all, seconds on an H200.
TEST(CudaSemanticsEdge, RowKernelsReachRowsPastTwoToThe31) {
  LOOM_REQUIRE_CUDA();
  if (testing::cuda_tests_on_cpu()) GTEST_SKIP() << "too large for the CPU stand-in";
  check_width_one_rows(int64_t(1) << 20);
}

}  // namespace
}  // namespace loom
