// Elementwise ops on CUDA against the CPU backend: every binary, compare, unary and cast
// op, broadcasting, scalars, odd sizes and sizes that take the 16-byte vector path.
#include <cmath>
#include <functional>
#include <limits>

#include "cuda/cuda_test_util.h"

namespace loom {
namespace {

using testing::expect_gpu_matches_cpu;
using testing::random_tensor;

using BinaryFn = std::function<Tensor(const Tensor&, const Tensor&)>;

struct BinaryCase {
  const char* name;
  BinaryFn fn;
  float lo, hi;  // input range (pow keeps a positive base)
};

const std::vector<BinaryCase>& binary_cases() {
  static const std::vector<BinaryCase> cases = {
      {"add", [](auto& a, auto& b) { return add(a, b); }, -2, 2},
      {"sub", [](auto& a, auto& b) { return sub(a, b); }, -2, 2},
      {"mul", [](auto& a, auto& b) { return mul(a, b); }, -2, 2},
      {"div", [](auto& a, auto& b) { return div(a, b); }, 0.5f, 2},
      {"pow", [](auto& a, auto& b) { return pow(a, b); }, 0.1f, 2},
      {"maximum", [](auto& a, auto& b) { return maximum(a, b); }, -2, 2},
      {"minimum", [](auto& a, auto& b) { return minimum(a, b); }, -2, 2},
      {"equal", [](auto& a, auto& b) { return equal(a, b); }, -2, 2},
      {"less", [](auto& a, auto& b) { return less(a, b); }, -2, 2},
      {"greater", [](auto& a, auto& b) { return greater(a, b); }, -2, 2},
  };
  return cases;
}

// [a shape, b shape]: same shape (vector path, odd tail), broadcasts, scalars.
const std::vector<std::pair<Extents, Extents>> kShapePairs = {
    {{1 << 16}, {1 << 16}}, {{1000, 37}, {1000, 37}},  {{3, 1, 5}, {4, 5}}, {{}, {2, 3}},
    {{257, 129}, {}},       {{2, 3, 4, 5}, {3, 1, 5}}, {{64, 1}, {1, 48}},  {{7}, {7}},
};

TEST(CudaElementwise, BinaryFloatOps) {
  LOOM_REQUIRE_CUDA();
  for (const auto& c : binary_cases())
    for (DType dtype : testing::kFloatDTypes)
      for (const auto& [sa, sb] : kShapePairs) {
        Graph g;
        Tensor a = g.placeholder("a", to_shape(sa), dtype);
        Tensor b = g.placeholder("b", to_shape(sb), dtype);
        Feeds feeds{{"a", random_tensor(dtype, sa, c.lo, c.hi)},
                    {"b", random_tensor(dtype, sb, c.lo, c.hi)}};
        expect_gpu_matches_cpu(g, {c.fn(a, b)}, feeds,
                               std::string(c.name) + " " + dtype_name(dtype) + " " + to_string(sa) +
                                   " " + to_string(sb));
      }
}

TEST(CudaElementwise, BinaryIntegerOps) {
  LOOM_REQUIRE_CUDA();
  for (const auto& c : binary_cases()) {
    if (std::string(c.name) == "pow") continue;  // tested below on small exponents
    for (DType dtype : {DType::i32, DType::i64, DType::i8, DType::u8})
      for (const auto& [sa, sb] : kShapePairs) {
        Graph g;
        Tensor a = g.placeholder("a", to_shape(sa), dtype);
        Tensor b = g.placeholder("b", to_shape(sb), dtype);
        // Zeros in b exercise integer division by zero (defined as 0).
        Feeds feeds{{"a", random_tensor(dtype, sa, -10, 10)},
                    {"b", random_tensor(dtype, sb, -3, 3)}};
        if (dtype == DType::u8)
          feeds = {{"a", random_tensor(dtype, sa, 0, 20)}, {"b", random_tensor(dtype, sb, 0, 5)}};
        expect_gpu_matches_cpu(g, {c.fn(a, b)}, feeds,
                               std::string(c.name) + " " + dtype_name(dtype) + " " + to_string(sa) +
                                   " " + to_string(sb));
      }
  }
}

TEST(CudaElementwise, IntegerPow) {
  LOOM_REQUIRE_CUDA();
  for (DType dtype : {DType::i32, DType::i64}) {
    Graph g;
    Tensor a = g.placeholder("a", {33, 9}, dtype);
    Tensor b = g.placeholder("b", {9}, dtype);
    expect_gpu_matches_cpu(
        g, {pow(a, b)},
        {{"a", random_tensor(dtype, {33, 9}, -5, 5)}, {"b", random_tensor(dtype, {9}, 0, 4)}},
        std::string("pow ") + dtype_name(dtype));
  }
}

using UnaryFn = std::function<Tensor(const Tensor&)>;

TEST(CudaElementwise, UnaryFloatOps) {
  LOOM_REQUIRE_CUDA();
  struct UnaryCase {
    const char* name;
    UnaryFn fn;
    float lo, hi;
  };
  const std::vector<UnaryCase> cases = {
      {"neg", [](auto& x) { return neg(x); }, -3, 3},
      {"abs", [](auto& x) { return abs(x); }, -3, 3},
      {"exp", [](auto& x) { return exp(x); }, -3, 3},
      {"log", [](auto& x) { return log(x); }, 0.05f, 4},
      {"sqrt", [](auto& x) { return sqrt(x); }, 0.f, 4},
      {"rsqrt", [](auto& x) { return rsqrt(x); }, 0.05f, 4},
      {"sin", [](auto& x) { return sin(x); }, -4, 4},
      {"cos", [](auto& x) { return cos(x); }, -4, 4},
      {"tanh", [](auto& x) { return tanh(x); }, -3, 3},
      {"sigmoid", [](auto& x) { return sigmoid(x); }, -6, 6},
      {"silu", [](auto& x) { return silu(x); }, -6, 6},
      {"relu", [](auto& x) { return relu(x); }, -3, 3},
      {"gelu", [](auto& x) { return gelu(x); }, -4, 4},
      {"gelu_tanh", [](auto& x) { return gelu(x, GeluApproximation::tanh); }, -4, 4},
  };
  for (const auto& c : cases)
    for (DType dtype : testing::kFloatDTypes)
      for (Extents shape : {Extents{1 << 15}, Extents{999, 3}, Extents{5}, Extents{}}) {
        Graph g;
        Tensor x = g.placeholder("x", to_shape(shape), dtype);
        expect_gpu_matches_cpu(
            g, {c.fn(x)}, {{"x", random_tensor(dtype, shape, c.lo, c.hi)}},
            std::string(c.name) + " " + dtype_name(dtype) + " " + to_string(shape));
      }
}

TEST(CudaElementwise, UnaryIntegerOps) {
  LOOM_REQUIRE_CUDA();
  for (DType dtype : {DType::i32, DType::i64, DType::i8}) {
    Graph g;
    Tensor x = g.placeholder("x", {131, 3}, dtype);
    expect_gpu_matches_cpu(g, {neg(x), abs(x), relu(x)},
                           {{"x", random_tensor(dtype, {131, 3}, -50, 50)}},
                           std::string("neg/abs/relu ") + dtype_name(dtype));
  }
}

TEST(CudaElementwise, WhereBroadcastsThreeWays) {
  LOOM_REQUIRE_CUDA();
  for (DType dtype : {DType::f32, DType::f16, DType::bf16, DType::i64, DType::boolean}) {
    Graph g;
    Tensor c = g.placeholder("c", {4, 1, 6}, DType::boolean);
    Tensor a = g.placeholder("a", {5, 6}, dtype);
    Tensor b = g.placeholder("b", {4, 5, 1}, dtype);
    expect_gpu_matches_cpu(g, {where(c, a, b)},
                           {{"c", random_tensor(DType::boolean, {4, 1, 6})},
                            {"a", random_tensor(dtype, {5, 6}, -9, 9)},
                            {"b", random_tensor(dtype, {4, 5, 1}, -9, 9)}},
                           std::string("where ") + dtype_name(dtype));
  }
}

TEST(CudaElementwise, CastEveryPair) {
  LOOM_REQUIRE_CUDA();
  const std::vector<DType> dtypes = {DType::f32, DType::f16, DType::bf16, DType::i8,
                                     DType::u8,  DType::i32, DType::i64,  DType::boolean};
  for (DType from : dtypes)
    for (DType to : dtypes) {
      Graph g;
      Extents shape{77, 5};
      Tensor x = g.placeholder("x", to_shape(shape), from);
      // Non-negative values that fit every dtype, so no conversion is undefined.
      expect_gpu_matches_cpu(g, {cast(x, to)}, {{"x", random_tensor(from, shape, 0, 100)}},
                             std::string("cast ") + dtype_name(from) + " -> " + dtype_name(to),
                             testing::Tolerance{});
    }
}

// The cast rules where they bite (DESIGN.md, src/backends/cpu/convert.h): float to integer
// truncates and saturates and NaN becomes 0, to bool is "not zero", integer narrowing wraps,
// to f16/bf16 rounds to nearest even (overflowing to inf). The GPU must give the CPU's bytes.
TEST(CudaElementwise, CastSaturationNanWrapAndBool) {
  LOOM_REQUIRE_CUDA();
  const std::vector<DType> targets = {DType::f32, DType::f16, DType::bf16, DType::i8,
                                      DType::u8,  DType::i32, DType::i64,  DType::boolean};
  const std::vector<float> floats = {
      NAN,           -NAN,         INFINITY,    -INFINITY,    3e10f,        -3e10f,
      1e19f,         -1e19f,       9.3e18f,     2.9f,         -2.9f,        0.5f,
      -0.5f,         -0.f,         0.f,         1e-30f,       127.5f,       128.f,
      -128.5f,       -129.f,       255.9f,      256.f,        300.f,        -300.f,
      65504.f,       65520.f,      -65504.f,    2147483520.f, 2147483648.f, -2147483648.f,
      -2147483904.f, 4294967296.f, 1.00390625f, 1.01171875f};
  for (DType from : testing::kFloatDTypes) {
    Graph g;
    Extents shape{int64_t(floats.size())};
    Tensor x = g.placeholder("x", to_shape(shape), from);
    std::vector<Tensor> outs;
    for (DType to : targets) outs.push_back(cast(x, to));
    expect_gpu_matches_cpu(g, outs, {{"x", TensorData::from_floats(floats, from, shape)}},
                           std::string("cast rules from ") + dtype_name(from),
                           testing::Tolerance{});
  }
  // Integers: the i64 feed is narrowed on the device first (wrapping), then cast on.
  const int64_t big = int64_t(1) << 40;
  const std::vector<int64_t> ints = {0,
                                     1,
                                     -1,
                                     127,
                                     128,
                                     -128,
                                     -129,
                                     255,
                                     256,
                                     300,
                                     -300,
                                     32767,
                                     32768,
                                     65535,
                                     65536,
                                     16777217,
                                     2147483647,
                                     2147483648LL,
                                     -2147483649LL,
                                     big + 5,
                                     -big - 3,
                                     std::numeric_limits<int64_t>::max(),
                                     std::numeric_limits<int64_t>::min()};
  for (DType mid : {DType::i64, DType::i32, DType::i8, DType::u8, DType::boolean}) {
    Graph g;
    Extents shape{int64_t(ints.size())};
    Tensor x = g.placeholder("x", to_shape(shape), DType::i64);
    Tensor narrowed = cast(x, mid);
    std::vector<Tensor> outs = {narrowed};
    for (DType to : targets) outs.push_back(cast(narrowed, to));
    expect_gpu_matches_cpu(g, outs, {{"x", TensorData::from_vector<int64_t>(ints, shape)}},
                           std::string("cast rules from i64 via ") + dtype_name(mid));
  }
}

// Each op rounds its result to the dtype on both devices; only silu's math may differ, by an
// ulp of its result (|silu| < 2 here). The subtraction after it can cancel to near zero, so
// that ulp is an absolute error: atol = 2 * eps(dtype).
testing::Tolerance chain_tolerance(DType dtype) {
  testing::Tolerance t = testing::tolerance_for(dtype);
  t.atol = std::max(t.atol, 2 * testing::epsilon_of(dtype));
  return t;
}

TEST(CudaElementwise, ChainOfOpsOnLargeTensor) {
  LOOM_REQUIRE_CUDA();
  for (DType dtype : testing::kFloatDTypes) {
    Graph g;
    Extents shape{512, 1024};
    Tensor x = g.placeholder("x", to_shape(shape), dtype);
    Tensor y = g.placeholder("y", to_shape(shape), dtype);
    Tensor z = silu(x * y + x) - y / 2.0;
    expect_gpu_matches_cpu(g, {z},
                           {{"x", random_tensor(dtype, shape)}, {"y", random_tensor(dtype, shape)}},
                           std::string("chain ") + dtype_name(dtype), chain_tolerance(dtype));
  }
}

}  // namespace
}  // namespace loom
