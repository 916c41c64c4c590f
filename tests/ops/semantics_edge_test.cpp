// The shared scalar rules (core/scalar_semantics.h) and the CPU kernels at their edges,
// against naive references written independently of the kernels: saturating and NaN casts,
// wrapping integer division and pow, NaN-propagating min/max, gelu, arange into narrow
// integers, rope at an offset near INT64_MAX, matmul with K = 0 and a bias, argmax without
// an axis attribute, layer_norm / rms_norm of rows far from zero, and reductions whose
// reduced axis is split across threads.
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/scalar_semantics.h"
#include "test_util.h"

namespace loom {
namespace {

using testing::run_once;
using testing::to_doubles;

// Elementwise |got - want| <= atol + rtol * |want|; NaN matches only NaN, infinities only
// themselves.
void expect_elementwise(const std::vector<double>& got, const std::vector<double>& want,
                        double atol, double rtol, const std::string& what) {
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
      ADD_FAILURE() << what << ": element " << i << " is " << got[i] << ", want " << want[i];
    }
  }
}

// ---- the header's rules, against references that use wider types instead of its tricks ----

const std::vector<double> kEdgeValues = {
    std::numeric_limits<double>::quiet_NaN(),
    std::numeric_limits<double>::infinity(),
    -std::numeric_limits<double>::infinity(),
    0.0,
    -0.0,
    0.99,
    -0.99,
    126.5,
    127.0,
    127.99,
    128.0,
    -128.99,
    -129.0,
    255.5,
    256.0,
    -1.5,
    2147483647.5,
    2147483648.0,
    -2147483649.0,
    4294967296.0,
    9.2233720368547758e18,
    -9.2233720368547758e18,
    -9.3e18,
    1e300,
    std::numeric_limits<double>::denorm_min(),
};

// NaN to 0, truncation, then clamping in 80-bit long double (exact for every int64).
template <class To>
To reference_convert(double v) {
  if (std::isnan(v)) return To(0);
  long double t = std::trunc((long double)v);
  if (t > (long double)std::numeric_limits<To>::max()) return std::numeric_limits<To>::max();
  if (t < (long double)std::numeric_limits<To>::min()) return std::numeric_limits<To>::min();
  return To((long long)t);
}

template <class To>
void check_convert_from_floats() {
  for (double v : kEdgeValues) {
    EXPECT_EQ(scalar::convert<To>(v), reference_convert<To>(v)) << "double " << v;
    const float f = float(v);
    EXPECT_EQ(scalar::convert<To>(f), reference_convert<To>(double(f))) << "float " << f;
  }
}

TEST(ScalarSemantics, FloatToIntegerTruncatesSaturatesAndZeroesNaN) {
  check_convert_from_floats<int8_t>();
  check_convert_from_floats<uint8_t>();
  check_convert_from_floats<int32_t>();
  check_convert_from_floats<int64_t>();
}

TEST(ScalarSemantics, ToBoolIsNotZeroAndNarrowingWraps) {
  for (double v : kEdgeValues) EXPECT_EQ(scalar::convert<bool>(v), !(v == 0.0)) << v;
  for (int64_t v : {int64_t(0), int64_t(1), int64_t(-1), int64_t(255), int64_t(256), int64_t(-129),
                    int64_t(1) << 40, std::numeric_limits<int64_t>::min()}) {
    EXPECT_EQ(scalar::convert<int8_t>(v), int8_t(uint8_t(uint64_t(v) & 0xff))) << v;
    EXPECT_EQ(scalar::convert<uint8_t>(v), uint8_t(uint64_t(v) & 0xff)) << v;
    EXPECT_EQ(scalar::convert<int32_t>(v), int32_t(uint32_t(uint64_t(v) & 0xffffffffu))) << v;
  }
}

// Exhaustive over int8 and uint8 pairs, against int arithmetic reduced modulo 2^8.
template <class C>
void check_small_integer_arithmetic() {
  const int lo = std::numeric_limits<C>::min(), hi = std::numeric_limits<C>::max();
  auto wrap = [](long long v) { return C(uint8_t(uint64_t(v) & 0xff)); };
  for (int a = lo; a <= hi; ++a)
    for (int b = lo; b <= hi; ++b) {
      const C ca = C(a), cb = C(b);
      ASSERT_EQ(scalar::add(ca, cb), wrap(a + b)) << a << " + " << b;
      ASSERT_EQ(scalar::sub(ca, cb), wrap(a - b)) << a << " - " << b;
      ASSERT_EQ(scalar::mul(ca, cb), wrap((long long)a * b)) << a << " * " << b;
      ASSERT_EQ(scalar::div(ca, cb), b == 0 ? C(0) : wrap(a / b)) << a << " / " << b;
      C want_pow;
      if (b < 0) {
        want_pow = a == 1 ? C(1) : a == -1 ? C((b % 2) ? -1 : 1) : C(0);
      } else {
        uint64_t p = 1;
        for (int e = 0; e < b; ++e) p = (p * uint64_t(uint8_t(ca))) & 0xff;
        want_pow = C(uint8_t(p));
      }
      ASSERT_EQ(scalar::pow(ca, cb), want_pow) << a << " ^ " << b;
    }
}

TEST(ScalarSemantics, IntegerArithmeticWrapsAndDivisionByZeroIsZero) {
  check_small_integer_arithmetic<int8_t>();
  check_small_integer_arithmetic<uint8_t>();
  constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
  EXPECT_EQ(scalar::div<int64_t>(kMin, -1), kMin);
  EXPECT_EQ(scalar::div<int64_t>(7, 0), 0);
  EXPECT_EQ(scalar::div<int64_t>(-7, 2), -3);  // toward zero, not floor
  EXPECT_EQ(scalar::negate<int32_t>(std::numeric_limits<int32_t>::min()),
            std::numeric_limits<int32_t>::min());
  EXPECT_EQ(scalar::absolute<int32_t>(std::numeric_limits<int32_t>::min()),
            std::numeric_limits<int32_t>::min());
}

TEST(ScalarSemantics, MaximumAndMinimumPropagateNaNFromEitherSide) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  EXPECT_TRUE(std::isnan(scalar::maximum(nan, 1.f)));
  EXPECT_TRUE(std::isnan(scalar::maximum(1.f, nan)));
  EXPECT_TRUE(std::isnan(scalar::minimum(nan, 1.f)));
  EXPECT_TRUE(std::isnan(scalar::minimum(1.f, nan)));
  EXPECT_EQ(scalar::maximum(-2.f, 3.f), 3.f);
  EXPECT_EQ(scalar::minimum(-2.f, 3.f), -2.f);
  EXPECT_EQ(scalar::maximum<int8_t>(-128, 127), 127);
  EXPECT_EQ(scalar::relu(nan) != scalar::relu(nan), true);
  EXPECT_EQ(scalar::relu(-3.f), 0.f);
}

TEST(ScalarSemantics, GeluMatchesItsDefinitionInDouble) {
  for (int i = -800; i <= 800; ++i) {
    const float x = float(i) / 100.f;
    const double xd = x;
    const double exact = 0.5 * xd * (1.0 + std::erf(xd / std::sqrt(2.0)));
    const double tanh_form =
        0.5 * xd * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (xd + 0.044715 * xd * xd * xd)));
    EXPECT_NEAR(scalar::gelu(x), exact, 1e-6 + 1e-6 * std::abs(exact)) << x;
    EXPECT_NEAR(scalar::gelu_tanh(x), tanh_form, 1e-6 + 1e-6 * std::abs(tanh_form)) << x;
  }
}

TEST(ScalarSemantics, RopePositionIsDefinedForEveryOffset) {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  // offset + s would overflow int64; in double it is just a large position.
  EXPECT_EQ(scalar::rope_position(kMax, 7, 1.0), 9223372036854775808.0);
  EXPECT_EQ(scalar::rope_position(-5, 5, 3.0), 0.0);
  EXPECT_DOUBLE_EQ(scalar::rope_position(kMax - 3, 2, 1e-18), 9.223372036854775808);
}

// ---- CPU kernels at the edges ----

TEST(SemanticsEdge, ArangeIntoNarrowIntegersSaturates) {
  struct Case {
    double start, stop, step;
    DType dtype;
  };
  for (const Case& c : std::vector<Case>{{-300, 300, 7, DType::i8},
                                         {-300, 300, 7.5, DType::u8},
                                         {400, -400, -13, DType::u8},
                                         {2147483000.0, 2147484000.0, 100.5, DType::i32},
                                         {-0.9, 2, 0.3, DType::i8}}) {
    Graph g;
    Tensor y = arange(g, c.start, c.stop, c.step, c.dtype);
    // Read through the exact integer type: to_doubles goes through float.
    const TensorData out = run_once(g, {y}).at(0);
    std::vector<double> got;
    if (c.dtype == DType::i8)
      for (int8_t v : out.to_vector<int8_t>()) got.push_back(v);
    if (c.dtype == DType::u8)
      for (uint8_t v : out.to_vector<uint8_t>()) got.push_back(v);
    if (c.dtype == DType::i32)
      for (int32_t v : out.to_vector<int32_t>()) got.push_back(v);
    ASSERT_EQ(int64_t(got.size()), int64_t(std::ceil((c.stop - c.start) / c.step)));
    std::vector<double> want;
    for (size_t i = 0; i < got.size(); ++i) {
      const double v = c.start + double(i) * c.step;
      if (c.dtype == DType::i8) want.push_back(reference_convert<int8_t>(v));
      if (c.dtype == DType::u8) want.push_back(reference_convert<uint8_t>(v));
      if (c.dtype == DType::i32) want.push_back(reference_convert<int32_t>(v));
    }
    expect_elementwise(
        got, want, 0, 0,
        std::string("arange into ") + dtype_name(c.dtype) + " from " + std::to_string(c.start));
  }
}

// rope in long double with the position (offset + s) * scale formed exactly.
std::vector<double> rope_reference(const std::vector<double>& x, int64_t positions,
                                   int64_t features, int64_t offset, double scale, double base) {
  std::vector<double> y(x.size());
  const int64_t half = features / 2, rows = int64_t(x.size()) / features;
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t s = r % positions;
    const long double position = ((long double)offset + (long double)s) * (long double)scale;
    for (int64_t i = 0; i < half; ++i) {
      const long double theta =
          position * std::pow((long double)base, -(long double)(2 * i) / features);
      const double c = double(std::cos(theta)), sn = double(std::sin(theta));
      const double x0 = x[size_t(r * features + i)], x1 = x[size_t(r * features + i + half)];
      y[size_t(r * features + i)] = x0 * c - x1 * sn;
      y[size_t(r * features + i + half)] = x0 * sn + x1 * c;
    }
  }
  return y;
}

TEST(SemanticsEdge, RopeAtAnOffsetNearInt64Max) {
  constexpr int64_t kOffset = std::numeric_limits<int64_t>::max() - 3;
  const Extents shape = {2, 8, 16};  // offset + s passes INT64_MAX for s >= 4
  Graph g;
  Tensor x = g.placeholder("x", to_shape(shape));
  Tensor offset = g.placeholder("offset", {}, DType::i64);
  RopeOptions options;
  options.scale = 1e-18;  // positions near 9.22: angles of a few radians
  TensorData data = testing::random_tensor(DType::f32, shape);
  TensorData got =
      run_once(g, {rope(x, offset, options)},
               {{"x", data}, {"offset", TensorData::from_vector<int64_t>({kOffset}, {})}})
          .at(0);
  expect_elementwise(to_doubles(got),
                     rope_reference(to_doubles(data), 8, 16, kOffset, 1e-18, options.base), 2e-6,
                     2e-6, "rope at offset INT64_MAX - 3");
}

Tensor matmul_with_bias(Graph& g, const Tensor& a, const Tensor& b, const Tensor& bias) {
  return g.add_node1("matmul", {a, b, bias}, {});
}

TEST(SemanticsEdge, MatmulWithKZeroGivesTheBiasOrZeros) {
  for (DType dtype : {DType::f32, DType::f16, DType::bf16})
    for (const Extents& a_shape : {Extents{3, 0}, Extents{2, 3, 0}}) {
      Graph g;
      Tensor a = g.placeholder("a", to_shape(a_shape), dtype);
      Tensor b = g.placeholder("b", {0, 5}, dtype);
      Tensor bias = g.placeholder("bias", {5}, dtype);
      TensorData bias_data = testing::random_tensor(dtype, {5}, -4.f, 4.f);
      auto outs = run_once(g, {matmul_with_bias(g, a, b, bias), matmul(a, b)},
                           {{"a", TensorData::zeros(dtype, a_shape)},
                            {"b", TensorData::zeros(dtype, {0, 5})},
                            {"bias", bias_data}});
      const std::vector<double> bias_values = to_doubles(bias_data);
      const int64_t rows = numel(Extents(a_shape.begin(), a_shape.end() - 1));
      std::vector<double> want_bias, want_zero(size_t(rows * 5), 0.0);
      for (int64_t r = 0; r < rows; ++r)
        want_bias.insert(want_bias.end(), bias_values.begin(), bias_values.end());
      const std::string what =
          std::string("matmul k = 0 ") + dtype_name(dtype) + " " + to_string(a_shape);
      expect_elementwise(to_doubles(outs.at(0)), want_bias, 0, 0, what + " with bias");
      expect_elementwise(to_doubles(outs.at(1)), want_zero, 0, 0, what);
    }
}

TEST(SemanticsEdge, ArgmaxWithoutAnAxisAttributeUsesAxisZero) {
  const Extents shape = {5, 7};
  Graph g;
  Tensor x = g.placeholder("x", to_shape(shape));
  Tensor y = g.add_node1("argmax", {x}, {});
  ASSERT_EQ(y.shape(), to_shape({7}));
  TensorData data = testing::random_tensor(DType::f32, shape, -100, 100);
  std::vector<double> v = to_doubles(data), want;
  for (int64_t j = 0; j < 7; ++j) {
    int64_t best = 0;
    for (int64_t i = 1; i < 5; ++i)
      if (v[size_t(i * 7 + j)] > v[size_t(best * 7 + j)]) best = i;
    want.push_back(double(best));
  }
  expect_elementwise(to_doubles(run_once(g, {y}, {{"x", data}}).at(0)), want, 0, 0, "argmax");
}

// Rows of mean 1e4 and spread 1: an f32 sum of such a row loses the mean's low bits, and
// layer_norm's output (x - mean) / std carries that error. The reference is float64.
TensorData rows_far_from_zero(Extents shape) {
  std::normal_distribution<float> dist(0.f, 1.f);
  std::vector<float> values(size_t(numel(shape)));
  for (auto& v : values) v = 1e4f + dist(testing::rng());
  return TensorData::from_floats(values, DType::f32, std::move(shape));
}

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

TEST(SemanticsEdge, LayerNormOfRowsFarFromZeroMatchesFloat64) {
  for (int64_t d : {4096, 1000, 7}) {
    const Extents shape = {32, d};
    Graph g;
    Tensor x = g.placeholder("x", to_shape(shape));
    TensorData data = rows_far_from_zero(shape);
    auto outs = run_once(g, {layer_norm(x), rms_norm(x)}, {{"x", data}});
    const std::vector<double> xd = to_doubles(data);
    // The outputs are near N(0, 1); 1e-6 is a few f32 ulps of them. An f32 row sum is off
    // by ~1e-3 here (its ulp at 4e7 is 4), so the tolerance catches it.
    expect_elementwise(to_doubles(outs.at(0)), norm_reference(xd, d, false, 1e-5), 1e-6, 1e-6,
                       "layer_norm d = " + std::to_string(d));
    expect_elementwise(to_doubles(outs.at(1)), norm_reference(xd, d, true, 1e-6), 0, 1e-6,
                       "rms_norm d = " + std::to_string(d));
  }
}

// ---- reductions split across threads ----

struct SplitCase {
  Extents shape;
  std::vector<int64_t> axes;
};

const std::vector<SplitCase> kSplitCases = {
    {{65536, 8}, {0}},     // the case that ran one task per output chunk
    {{8, 65536}, {1}},     // few long rows
    {{3, 40000, 5}, {1}},  // outer, reduced and inner groups
    {{70000, 70}, {0}},    // inner wider than one chunk of 64
    {{100003}, {}},        // everything, an odd count
    {{2, 50000, 1, 3}, {1, 2}},
};

// Output index of every input element (row-major odometer over the input's dims).
std::vector<int64_t> output_index_of_each_element(const Extents& shape,
                                                  const std::vector<bool>& reduced) {
  std::vector<int64_t> out(size_t(numel(shape)));
  std::vector<int64_t> idx(shape.size(), 0);
  for (size_t flat = 0; flat < out.size(); ++flat) {
    int64_t o = 0;
    for (size_t d = 0; d < shape.size(); ++d)
      if (!reduced[d]) o = o * shape[d] + idx[d];
    out[flat] = o;
    for (size_t d = shape.size(); d-- > 0;) {
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
  }
  return out;
}

// Sequential double sums and comparisons over a naive walk of the input.
std::vector<double> reduce_naive(const std::vector<double>& x,
                                 const std::vector<int64_t>& out_index, int64_t n_out,
                                 const std::string& op) {
  const int64_t count = int64_t(x.size()) / n_out;
  std::vector<double> acc(size_t(n_out), op == "max" ? -INFINITY : op == "min" ? INFINITY : 0.0);
  for (size_t flat = 0; flat < x.size(); ++flat) {
    double& a = acc[size_t(out_index[flat])];
    const double v = x[flat];
    if (op == "max")
      a = std::isnan(a) || std::isnan(v) ? NAN : std::max(a, v);
    else if (op == "min")
      a = std::isnan(a) || std::isnan(v) ? NAN : std::min(a, v);
    else
      a += v;
  }
  if (op == "mean")
    for (auto& a : acc) a /= double(count);
  return acc;
}

TEST(SemanticsEdge, SplitReductionsMatchANaiveDoubleReference) {
  for (DType dtype : {DType::f32, DType::f16})
    for (const auto& c : kSplitCases) {
      Graph g;
      Tensor x = g.placeholder("x", to_shape(c.shape), dtype);
      // f16 sums stay below its maximum (65504) with values in [0, 1).
      TensorData data = dtype == DType::f32 ? testing::random_tensor(dtype, c.shape, -1.f, 3.f)
                                            : testing::random_tensor(dtype, c.shape, 0.f, 1.f);
      auto outs = run_once(g, {sum(x, c.axes), mean(x, c.axes), max(x, c.axes), min(x, c.axes)},
                           {{"x", data}});
      const std::vector<double> xd = to_doubles(data);
      std::vector<bool> reduced(c.shape.size(), c.axes.empty());
      for (int64_t a : c.axes) reduced[size_t(a)] = true;
      const std::vector<int64_t> out_index = output_index_of_each_element(c.shape, reduced);
      const int64_t n_out = outs.at(0).numel();
      const std::string what =
          std::string(dtype_name(dtype)) + " " + to_string(c.shape) + " axes " + to_string(c.axes);
      // Sums are exact to double rounding; only the final rounding to the dtype remains.
      const double rtol = dtype == DType::f32 ? 1e-6 : 1e-3;
      const char* ops[] = {"sum", "mean", "max", "min"};
      for (int k = 0; k < 4; ++k)
        expect_elementwise(to_doubles(outs.at(size_t(k))),
                           reduce_naive(xd, out_index, n_out, ops[k]), 0, k < 2 ? rtol : 0.0,
                           std::string(ops[k]) + " " + what);
    }
}

TEST(SemanticsEdge, SplitReductionsWrapIntegersAndPropagateNaN) {
  const Extents shape = {65536, 8};
  {
    // Large i32 values: the sums overflow 32 bits and must wrap exactly.
    std::uniform_int_distribution<int32_t> dist(1 << 29, std::numeric_limits<int32_t>::max());
    std::vector<int32_t> values(size_t(numel(shape)));
    for (auto& v : values) v = dist(testing::rng());
    Graph g;
    Tensor x = g.placeholder("x", to_shape(shape), DType::i32);
    auto got =
        run_once(g, {sum(x, {0}), max(x, {0})}, {{"x", TensorData::from_vector(values, shape)}});
    std::vector<int32_t> sums = got.at(0).to_vector<int32_t>();
    std::vector<int32_t> maxima = got.at(1).to_vector<int32_t>();
    for (int64_t j = 0; j < 8; ++j) {
      int64_t s = 0;
      int32_t m = std::numeric_limits<int32_t>::min();
      for (int64_t i = 0; i < shape[0]; ++i) {
        s += values[size_t(i * 8 + j)];
        m = std::max(m, values[size_t(i * 8 + j)]);
      }
      EXPECT_EQ(sums[size_t(j)], int32_t(uint32_t(uint64_t(s) & 0xffffffffu))) << j;
      EXPECT_EQ(maxima[size_t(j)], m) << j;
    }
  }
  {
    // A NaN in a late part of the split must reach the result.
    std::vector<float> values(size_t(numel(shape)), 1.f);
    values[size_t(60000 * 8 + 3)] = NAN;
    Graph g;
    Tensor x = g.placeholder("x", to_shape(shape));
    auto got = run_once(g, {max(x, {0}), min(x, {0}), sum(x, {0})},
                        {{"x", TensorData::from_floats(values, DType::f32, shape)}});
    for (size_t k = 0; k < 3; ++k) {
      std::vector<float> out = got.at(k).to_floats();
      for (int64_t j = 0; j < 8; ++j)
        EXPECT_EQ(std::isnan(out[size_t(j)]), j == 3) << "output " << k << " column " << j;
    }
  }
}

TEST(SemanticsEdge, SplitReductionsAreDeterministic) {
  const Extents shape = {65536, 8};
  Graph g;
  Tensor x = g.placeholder("x", to_shape(shape));
  CompileOptions options;
  options.outputs = {sum(x, {0}), mean(x, {0})};
  Executable exe = compile(g, options);
  TensorData data = testing::random_tensor(DType::f32, shape, -1e4f, 1e4f);
  auto first = exe.run({{"x", data}});
  for (int run = 0; run < 5; ++run) {
    auto again = exe.run({{"x", data}});
    for (size_t k = 0; k < 2; ++k)
      EXPECT_EQ(again.at(k).to_vector<float>(), first.at(k).to_vector<float>()) << run;
  }
}

}  // namespace
}  // namespace loom
