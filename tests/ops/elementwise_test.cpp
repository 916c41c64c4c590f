// Elementwise ops against naive double-precision references: every op on f32, f16 and bf16
// (and integers where defined), numpy broadcasting, strided feeds, symbolic dims, the
// integer edge cases that must not trap, every cast pair, and the errors.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <numbers>
#include <ostream>
#include <span>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "test_util.h"

namespace {

using namespace loom;
using namespace loom::testing;

constexpr DType kFloatTypes[] = {DType::f32, DType::f16, DType::bf16};

std::string describe(DType dtype, const Extents& a, const Extents& b = {}) {
  return std::string(dtype_name(dtype)) + " " + to_string(a) + " " + to_string(b);
}

// Right-aligned numpy broadcast of extents (the tests' own, independent of the library's).
Extents broadcast_extents(const Extents& a, const Extents& b) {
  Extents out(std::max(a.size(), b.size()), 1);
  for (size_t i = 0; i < out.size(); ++i) {
    int64_t da = i < out.size() - a.size() ? 1 : a[i - (out.size() - a.size())];
    int64_t db = i < out.size() - b.size() ? 1 : b[i - (out.size() - b.size())];
    out[i] = da == 1 ? db : da;
  }
  return out;
}

// Integer-valued floats in [lo, hi], so that comparisons meet ties and integer dtypes hold
// them exactly.
TensorData random_integers(DType dtype, const Extents& shape, int lo, int hi) {
  std::uniform_int_distribution<int> dist(lo, hi);
  std::vector<float> values(size_t(numel(shape)));
  for (auto& v : values) v = float(dist(rng()));
  return TensorData::from_floats(values, dtype, shape);
}

// Float results elementwise within the dtype's tolerance; other dtypes exactly.
void expect_matches(const TensorData& got, const std::vector<double>& want,
                    const std::string& what) {
  ASSERT_EQ(size_t(got.numel()), want.size()) << what;
  expect_close(got, want, tolerance_for(got.dtype()), what);
}

// ---- binary ops ---------------------------------------------------------------------

using BinaryFn = Tensor (*)(const Tensor&, const Tensor&);
using BinaryRef = std::function<double(double, double)>;

struct BinaryCase {
  const char* op;
  BinaryFn fn;
  BinaryRef ref;
  bool compare;      // bool result; inputs are small integers so that ties occur
  float a_lo, a_hi;  // float input ranges
  float b_lo, b_hi;
  BinaryRef integer_ref;  // reference on integers; empty: same as ref
};

double integer_div(double a, double b) { return b == 0 ? 0 : std::trunc(a / b); }

double integer_pow(double a, double b) {
  if (b < 0) return a == 1 ? 1 : a == -1 ? (std::fmod(-b, 2) == 1 ? -1 : 1) : 0;
  return std::pow(a, b);
}

double nan_max(double a, double b) { return std::isnan(a) || std::isnan(b) ? NAN : std::max(a, b); }
double nan_min(double a, double b) { return std::isnan(a) || std::isnan(b) ? NAN : std::min(a, b); }

const BinaryCase kBinaryCases[] = {
    {"add", loom::add, [](double a, double b) { return a + b; }, false, -2, 2, -2, 2, {}},
    {"sub", loom::sub, [](double a, double b) { return a - b; }, false, -2, 2, -2, 2, {}},
    {"mul", loom::mul, [](double a, double b) { return a * b; }, false, -2, 2, -2, 2, {}},
    {"div", loom::div, [](double a, double b) { return a / b; }, false, -2, 2, 0.5f, 2,
     integer_div},
    {"pow", loom::pow, [](double a, double b) { return std::pow(a, b); }, false, 0.2f, 2, -2, 2,
     integer_pow},
    {"maximum", loom::maximum, nan_max, false, -2, 2, -2, 2, {}},
    {"minimum", loom::minimum, nan_min, false, -2, 2, -2, 2, {}},
    {"equal", loom::equal, [](double a, double b) { return double(a == b); }, true, 0, 0, 0, 0, {}},
    {"less", loom::less, [](double a, double b) { return double(a < b); }, true, 0, 0, 0, 0, {}},
    {"greater",
     loom::greater,
     [](double a, double b) { return double(a > b); },
     true,
     0,
     0,
     0,
     0,
     {}},
};

// Broadcasting cases: same shape, a missing leading dim, scalars, size-one dims on both
// sides, odd sizes, and sizes large enough to take the OpenMP path.
const std::pair<Extents, Extents> kShapePairs[] = {
    {{7, 13}, {7, 13}},
    {{3, 1, 5}, {4, 5}},
    {{}, {2, 3}},
    {{2, 3}, {}},
    {{7, 1}, {1, 13}},
    {{1, 1, 3}, {2, 1, 1}},
    {{5}, {1}},
    {{1}, {1}},
    {{2, 0, 3}, {3}},
    {{300, 257}, {257}},
    {{513, 200}, {513, 200}},
    {{1000, 1}, {1, 70}},
};

// gtest prints a failing parameter through these (the op name instead of raw bytes).
void PrintTo(const BinaryCase& c, std::ostream* os) { *os << c.op; }

class ElementwiseBinaryTest : public ::testing::TestWithParam<BinaryCase> {};

void check_binary(const BinaryCase& c, DType dtype, const Extents& sa, const Extents& sb,
                  TensorData ta, TensorData tb, const BinaryRef& ref) {
  const std::string what = std::string(c.op) + " " + describe(dtype, sa, sb);
  Graph g;
  Tensor a = g.placeholder("a", to_shape(sa), dtype);
  Tensor b = g.placeholder("b", to_shape(sb), dtype);
  Tensor y = c.fn(a, b);
  const Extents so = broadcast_extents(sa, sb);
  EXPECT_EQ(y.op(), c.op);
  EXPECT_EQ(y.shape(), to_shape(so)) << what;
  EXPECT_EQ(y.dtype(), c.compare ? DType::boolean : dtype) << what;
  auto out = run_once(g, {y}, {{"a", ta}, {"b", tb}});
  ASSERT_EQ(out.size(), 1u);
  ASSERT_EQ(out[0].shape(), so) << what;
  ASSERT_EQ(out[0].dtype(), y.dtype()) << what;
  const auto va = to_doubles(ta), vb = to_doubles(tb);
  std::vector<double> want(size_t(numel(so)));
  for (int64_t i = 0; i < numel(so); ++i) {
    auto idx = unravel(i, so);
    want[size_t(i)] =
        ref(va[size_t(broadcast_index(idx, sa))], vb[size_t(broadcast_index(idx, sb))]);
  }
  expect_matches(out[0], want, what);
}

TEST_P(ElementwiseBinaryTest, FloatDtypesBroadcastAgainstReference) {
  const BinaryCase& c = GetParam();
  for (DType dtype : kFloatTypes) {
    for (const auto& [sa, sb] : kShapePairs) {
      TensorData ta =
          c.compare ? random_integers(dtype, sa, -2, 2) : random_tensor(dtype, sa, c.a_lo, c.a_hi);
      TensorData tb =
          c.compare ? random_integers(dtype, sb, -2, 2) : random_tensor(dtype, sb, c.b_lo, c.b_hi);
      check_binary(c, dtype, sa, sb, ta, tb, c.ref);
      if (HasFatalFailure()) return;
    }
  }
}

TEST_P(ElementwiseBinaryTest, IntegerDtypesAgainstReference) {
  const BinaryCase& c = GetParam();
  const BinaryRef& ref = c.integer_ref ? c.integer_ref : c.ref;
  const bool is_pow = std::string(c.op) == "pow";
  for (DType dtype : {DType::i32, DType::i64, DType::i8}) {
    const std::vector<std::pair<Extents, Extents>> shape_pairs = {
        {{7, 13}, {7, 13}}, {{3, 1, 5}, {4, 5}}, {{}, {2, 3}}, {{300, 257}, {257}}};
    for (const auto& [sa, sb] : shape_pairs) {
      // Small enough that i8 products and powers stay in range; pow exponents include
      // negatives (truncated reciprocals) and div denominators include zero.
      TensorData ta =
          is_pow ? random_integers(dtype, sa, -3, 3) : random_integers(dtype, sa, -10, 10);
      TensorData tb =
          is_pow ? random_integers(dtype, sb, -2, 4) : random_integers(dtype, sb, -10, 10);
      check_binary(c, dtype, sa, sb, ta, tb, ref);
      if (HasFatalFailure()) return;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Elementwise, ElementwiseBinaryTest, ::testing::ValuesIn(kBinaryCases),
                         [](const auto& info) { return std::string(info.param.op); });

TEST(ElementwiseBinary, EqualComparesBools) {
  Graph g;
  Tensor a = g.placeholder("a", {4}, DType::boolean);
  Tensor b = g.placeholder("b", {2, 1}, DType::boolean);
  auto out = run_once(g, {equal(a, b)},
                      {{"a", TensorData::from_vector<bool>({true, false, true, false}, {4})},
                       {"b", TensorData::from_vector<bool>({true, false}, {2, 1})}});
  EXPECT_EQ(out[0].to_vector<bool>(),
            (std::vector<bool>{true, false, true, false, false, true, false, true}));
}

TEST(ElementwiseBinary, MaximumAndMinimumPropagateNan) {
  Graph g;
  Tensor a = g.placeholder("a", {3});
  Tensor b = g.placeholder("b", {3});
  auto out = run_once(g, {maximum(a, b), minimum(a, b)},
                      {{"a", TensorData::from_vector<float>({NAN, 1.f, 2.f}, {3})},
                       {"b", TensorData::from_vector<float>({1.f, NAN, 3.f}, {3})}});
  auto mx = out[0].to_vector<float>(), mn = out[1].to_vector<float>();
  EXPECT_TRUE(std::isnan(mx[0]) && std::isnan(mx[1]));
  EXPECT_TRUE(std::isnan(mn[0]) && std::isnan(mn[1]));
  EXPECT_EQ(mx[2], 3.f);
  EXPECT_EQ(mn[2], 2.f);
}

// ---- integer edge cases: nothing a user feeds may trap the process -------------------

template <class T>
std::vector<T> run_integer_binary(BinaryFn fn, const std::vector<T>& a, const std::vector<T>& b) {
  const int64_t n = int64_t(a.size());
  Graph g;
  Tensor ta = g.placeholder("a", {n}, dtype_of<T>());
  Tensor tb = g.placeholder("b", {n}, dtype_of<T>());
  std::vector<TensorData> out = run_once(
      g, {fn(ta, tb)},
      {{"a", TensorData::from_vector<T>(a, {n})}, {"b", TensorData::from_vector<T>(b, {n})}});
  return out[0].to_vector<T>();
}

TEST(ElementwiseInteger, DivisionTruncatesTowardZeroAndByZeroIsZero) {
  EXPECT_EQ(
      run_integer_binary<int32_t>(loom::div, {7, -7, 7, -7, 5, 0, -5}, {2, 2, -2, -2, 0, 0, 0}),
      (std::vector<int32_t>{3, -3, -3, 3, 0, 0, 0}));
  EXPECT_EQ(run_integer_binary<uint8_t>(loom::div, {7, 255, 9}, {2, 0, 3}),
            (std::vector<uint8_t>{3, 0, 3}));
}

TEST(ElementwiseInteger, MinimumDividedByMinusOneWraps) {
  constexpr int64_t kMin64 = std::numeric_limits<int64_t>::min();
  constexpr int32_t kMin32 = std::numeric_limits<int32_t>::min();
  EXPECT_EQ(run_integer_binary<int64_t>(loom::div, {kMin64, 6}, {-1, -1}),
            (std::vector<int64_t>{kMin64, -6}));
  EXPECT_EQ(run_integer_binary<int32_t>(loom::div, {kMin32}, {-1}), (std::vector<int32_t>{kMin32}));
  EXPECT_EQ(run_integer_binary<int8_t>(loom::div, {-128}, {-1}), (std::vector<int8_t>{-128}));
}

TEST(ElementwiseInteger, OverflowWrapsAround) {
  constexpr int32_t kMax32 = std::numeric_limits<int32_t>::max();
  constexpr int32_t kMin32 = std::numeric_limits<int32_t>::min();
  EXPECT_EQ(run_integer_binary<int32_t>(loom::add, {kMax32}, {1}), (std::vector<int32_t>{kMin32}));
  EXPECT_EQ(run_integer_binary<int32_t>(loom::sub, {kMin32}, {1}), (std::vector<int32_t>{kMax32}));
  EXPECT_EQ(run_integer_binary<int32_t>(loom::mul, {65536}, {65536}), (std::vector<int32_t>{0}));
  EXPECT_EQ(run_integer_binary<int8_t>(loom::add, {127}, {1}), (std::vector<int8_t>{-128}));
  EXPECT_EQ(run_integer_binary<uint8_t>(loom::add, {255}, {1}), (std::vector<uint8_t>{0}));
  EXPECT_EQ(run_integer_binary<uint8_t>(loom::sub, {0}, {1}), (std::vector<uint8_t>{255}));
  EXPECT_EQ(run_integer_binary<int32_t>(loom::pow, {2}, {31}), (std::vector<int32_t>{kMin32}));
}

TEST(ElementwiseInteger, PowWithNegativeExponentTruncates) {
  EXPECT_EQ(run_integer_binary<int64_t>(loom::pow, {2, 1, -1, -1, 0, 3, -2, 2},
                                        {-1, -5, -3, -4, -1, 0, 3, 40}),
            (std::vector<int64_t>{0, 1, -1, 1, 0, 1, -8, int64_t(1) << 40}));
}

TEST(ElementwiseInteger, NegAndAbsOfMinimumWrap) {
  constexpr int32_t kMin32 = std::numeric_limits<int32_t>::min();
  Graph g;
  Tensor x = g.placeholder("x", {3}, DType::i32);
  auto out = run_once(g, {neg(x), abs(x), relu(x)},
                      {{"x", TensorData::from_vector<int32_t>({kMin32, -5, 7}, {3})}});
  EXPECT_EQ(out[0].to_vector<int32_t>(), (std::vector<int32_t>{kMin32, 5, -7}));
  EXPECT_EQ(out[1].to_vector<int32_t>(), (std::vector<int32_t>{kMin32, 5, 7}));
  EXPECT_EQ(out[2].to_vector<int32_t>(), (std::vector<int32_t>{0, 0, 7}));
}

// ---- unary ops ------------------------------------------------------------------------

using UnaryFn = std::function<Tensor(const Tensor&)>;

struct UnaryCase {
  const char* op;
  UnaryFn fn;
  std::function<double(double)> ref;
  float lo, hi;
  bool integers;  // also defined on integer dtypes
};

double gelu_ref(double x) { return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0))); }
double gelu_tanh_ref(double x) {
  const double k = std::sqrt(2.0 / std::numbers::pi);
  return 0.5 * x * (1 + std::tanh(k * (x + 0.044715 * x * x * x)));
}

const UnaryCase kUnaryCases[] = {
    {"neg", [](const Tensor& x) { return neg(x); }, [](double x) { return -x; }, -2, 2, true},
    {"abs", [](const Tensor& x) { return loom::abs(x); }, [](double x) { return std::abs(x); }, -2,
     2, true},
    {"relu", [](const Tensor& x) { return relu(x); }, [](double x) { return x < 0 ? 0.0 : x; }, -2,
     2, true},
    {"exp", [](const Tensor& x) { return loom::exp(x); }, [](double x) { return std::exp(x); }, -3,
     3, false},
    {"log", [](const Tensor& x) { return loom::log(x); }, [](double x) { return std::log(x); },
     0.05f, 4, false},
    {"sqrt", [](const Tensor& x) { return loom::sqrt(x); }, [](double x) { return std::sqrt(x); },
     0, 4, false},
    {"rsqrt", [](const Tensor& x) { return rsqrt(x); }, [](double x) { return 1 / std::sqrt(x); },
     0.1f, 4, false},
    {"sin", [](const Tensor& x) { return loom::sin(x); }, [](double x) { return std::sin(x); }, -4,
     4, false},
    {"cos", [](const Tensor& x) { return loom::cos(x); }, [](double x) { return std::cos(x); }, -4,
     4, false},
    {"tanh", [](const Tensor& x) { return loom::tanh(x); }, [](double x) { return std::tanh(x); },
     -3, 3, false},
    {"sigmoid", [](const Tensor& x) { return sigmoid(x); },
     [](double x) { return 1 / (1 + std::exp(-x)); }, -6, 6, false},
    {"silu", [](const Tensor& x) { return silu(x); },
     [](double x) { return x / (1 + std::exp(-x)); }, -6, 6, false},
    {"gelu", [](const Tensor& x) { return gelu(x); }, gelu_ref, -5, 5, false},
    {"gelu_tanh", [](const Tensor& x) { return gelu(x, GeluApproximation::tanh); }, gelu_tanh_ref,
     -5, 5, false},
};

void PrintTo(const UnaryCase& c, std::ostream* os) { *os << c.op; }

class ElementwiseUnaryTest : public ::testing::TestWithParam<UnaryCase> {};

void check_unary(const UnaryCase& c, const TensorData& tx) {
  const std::string what = std::string(c.op) + " " + describe(tx.dtype(), tx.shape());
  Graph g;
  Tensor x = g.placeholder("x", to_shape(tx.shape()), tx.dtype());
  Tensor y = c.fn(x);
  EXPECT_EQ(y.op(), c.op);
  EXPECT_EQ(y.shape(), x.shape());
  EXPECT_EQ(y.dtype(), x.dtype());
  auto out = run_once(g, {y}, {{"x", tx}});
  ASSERT_EQ(out[0].shape(), tx.shape()) << what;
  ASSERT_EQ(out[0].dtype(), tx.dtype()) << what;
  std::vector<double> want = to_doubles(tx);
  for (double& v : want) v = c.ref(v);
  expect_matches(out[0], want, what);
}

TEST_P(ElementwiseUnaryTest, FloatDtypesAgainstReference) {
  const UnaryCase& c = GetParam();
  for (DType dtype : kFloatTypes)
    for (const Extents& shape :
         {Extents{7, 13}, Extents{}, Extents{1, 5, 1}, Extents{0, 4}, Extents{300, 257}}) {
      check_unary(c, random_tensor(dtype, shape, c.lo, c.hi));
      if (HasFatalFailure()) return;
    }
}

TEST_P(ElementwiseUnaryTest, IntegerDtypes) {
  const UnaryCase& c = GetParam();
  for (DType dtype : {DType::i32, DType::i64, DType::i8}) {
    Graph g;
    Tensor x = g.placeholder("x", {7, 13}, dtype);
    if (!c.integers) {
      // Transcendental math is for floats: the error names the op and the dtype.
      try {
        c.fn(x);
        ADD_FAILURE() << c.op << " accepted " << dtype_name(dtype);
      } catch (const Error& e) {
        EXPECT_EQ(e.kind(), ErrorKind::dtype);
        EXPECT_NE(std::string(e.what()).find(c.op), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find(dtype_name(dtype)), std::string::npos) << e.what();
      }
      continue;
    }
    check_unary(c, random_integers(dtype, {7, 13}, -20, 20));
  }
}

INSTANTIATE_TEST_SUITE_P(Elementwise, ElementwiseUnaryTest, ::testing::ValuesIn(kUnaryCases),
                         [](const auto& info) { return std::string(info.param.op); });

TEST(ElementwiseUnary, SpecialFloatValues) {
  Graph g;
  Tensor x = g.placeholder("x", {4});
  auto out =
      run_once(g, {loom::exp(x), loom::log(x), sigmoid(x), relu(x)},
               {{"x", TensorData::from_vector<float>({-INFINITY, 0.f, INFINITY, NAN}, {4})}});
  auto e = out[0].to_vector<float>(), l = out[1].to_vector<float>();
  auto s = out[2].to_vector<float>(), r = out[3].to_vector<float>();
  EXPECT_EQ(e[0], 0.f);
  EXPECT_EQ(e[2], INFINITY);
  EXPECT_EQ(l[1], -INFINITY);
  EXPECT_EQ(s[0], 0.f);
  EXPECT_EQ(s[2], 1.f);
  EXPECT_TRUE(std::isnan(r[3]));
  EXPECT_EQ(r[0], 0.f);
}

// ---- where ----------------------------------------------------------------------------

TEST(ElementwiseWhere, ThreeWayBroadcastAgainstReference) {
  struct Shapes {
    Extents cond, a, b;
  };
  for (DType dtype :
       {DType::f32, DType::f16, DType::bf16, DType::i32, DType::i64, DType::boolean}) {
    for (const Shapes& s : {Shapes{{3, 1, 5}, {4, 5}, {}}, Shapes{{}, {2, 3}, {2, 3}},
                            Shapes{{7, 1}, {13}, {7, 13}}, Shapes{{300, 257}, {300, 1}, {257}}}) {
      const std::string what = describe(dtype, s.cond, s.a) + " " + to_string(s.b);
      Graph g;
      Tensor c = g.placeholder("c", to_shape(s.cond), DType::boolean);
      Tensor a = g.placeholder("a", to_shape(s.a), dtype);
      Tensor b = g.placeholder("b", to_shape(s.b), dtype);
      Tensor y = where(c, a, b);
      const Extents so = broadcast_extents(broadcast_extents(s.cond, s.a), s.b);
      EXPECT_EQ(y.shape(), to_shape(so)) << what;
      EXPECT_EQ(y.dtype(), dtype);
      TensorData tc = random_integers(DType::boolean, s.cond, 0, 1);
      TensorData ta = random_tensor(dtype, s.a, -4, 4);
      TensorData tb = random_tensor(dtype, s.b, -4, 4);
      auto out = run_once(g, {y}, {{"c", tc}, {"a", ta}, {"b", tb}});
      ASSERT_EQ(out[0].shape(), so) << what;
      const auto vc = to_doubles(tc), va = to_doubles(ta), vb = to_doubles(tb);
      std::vector<double> want(size_t(numel(so)));
      for (int64_t i = 0; i < numel(so); ++i) {
        auto idx = unravel(i, so);
        want[size_t(i)] = vc[size_t(broadcast_index(idx, s.cond))] != 0
                              ? va[size_t(broadcast_index(idx, s.a))]
                              : vb[size_t(broadcast_index(idx, s.b))];
      }
      // where moves elements and never rounds them: exact for every dtype.
      auto got = to_doubles(out[0]);
      ASSERT_EQ(got, want) << what;
    }
  }
}

// ---- cast -----------------------------------------------------------------------------

constexpr DType kCastTypes[] = {DType::f32, DType::f16, DType::bf16, DType::i8,
                                DType::u8,  DType::i32, DType::i64,  DType::boolean};

// Wraps an integer into `to` (two's complement), as integer-to-integer casts do.
double wrap_integer(int64_t v, DType to) {
  switch (to) {
    case DType::i8:
      return double(int8_t(v));
    case DType::u8:
      return double(uint8_t(v));
    case DType::i32:
      return double(int32_t(v));
    default:
      return double(v);
  }
}

// The documented cast semantics, written independently of the kernel.
double cast_ref(double v, DType from, DType to) {
  if (to == DType::boolean) return v != 0 ? 1 : 0;  // NaN != 0 is true
  if (to == DType::f32) return double(float(v));
  if (to == DType::f16) return f16_to_float(float_to_f16(float(v)));
  if (to == DType::bf16) return bf16_to_float(float_to_bf16(float(v)));
  if (!is_float(from)) return wrap_integer(int64_t(v), to);
  if (std::isnan(v)) return 0;
  double lo = 0, hi = 0;
  switch (to) {
    case DType::i8:
      lo = -128, hi = 127;
      break;
    case DType::u8:
      lo = 0, hi = 255;
      break;
    case DType::i32:
      lo = -2147483648.0, hi = 2147483647.0;
      break;
    default:
      lo = -9223372036854775808.0, hi = 9223372036854775807.0;
      break;
  }
  return std::clamp(std::trunc(v), lo, hi);
}

std::vector<float> cast_inputs(DType from) {
  switch (from) {
    case DType::boolean:
      return {0, 1, 1, 0};
    case DType::u8:
      return {0, 1, 3, 100, 128, 255};
    case DType::i8:
      return {-128, -3, -1, 0, 1, 3, 127};
    case DType::i32:
      return {-70000, -300, -1, 0, 2, 255, 256, 70000, 2147483520.f};
    case DType::i64:
      return {-3e9f, -70000, -1, 0, 3, 300, 70000, 3e9f};
    default:
      return {NAN,   -INFINITY, -3e9f, -300.5f, -3.75f, -2.5f,  -1.5f, -0.25f, 0,       0.5f,
              0.75f, 1,         2.75f, 127.9f,  255.5f, 300.5f, 70000, 3e9f,   INFINITY};
  }
}

TEST(ElementwiseCast, EveryPairOfDtypes) {
  for (DType from : kCastTypes) {
    const std::vector<float> values = cast_inputs(from);
    const int64_t n = int64_t(values.size());
    const TensorData tx = TensorData::from_floats(values, from, {n});
    const auto vx = to_doubles(tx);
    for (DType to : kCastTypes) {
      const std::string what = std::string(dtype_name(from)) + " -> " + dtype_name(to);
      Graph g;
      Tensor x = g.placeholder("x", {n}, from);
      Tensor y = cast(x, to);
      EXPECT_EQ(y.op(), "cast");
      EXPECT_EQ(y.dtype(), to) << what;
      EXPECT_EQ(y.shape(), x.shape()) << what;
      auto got = to_doubles(run_once(g, {y}, {{"x", tx}})[0]);
      ASSERT_EQ(got.size(), vx.size()) << what;
      for (size_t i = 0; i < vx.size(); ++i) {
        // Results are read back through float (to_doubles), so the reference is too:
        // INT32_MAX reads as 2^31. The saturation tests below read exact integers.
        const double want = double(float(cast_ref(vx[i], from, to)));
        if (std::isnan(want)) {
          EXPECT_TRUE(std::isnan(got[i])) << what << " of " << vx[i];
        } else {
          EXPECT_EQ(got[i], want) << what << " of " << vx[i];
        }
      }
    }
  }
}

TEST(ElementwiseCast, FloatToIntegerTruncatesAndSaturates) {
  Graph g;
  Tensor x = g.placeholder("x", {6});
  auto out =
      run_once(g, {cast(x, DType::i8), cast(x, DType::u8), cast(x, DType::i32)},
               {{"x", TensorData::from_vector<float>({2.9f, -2.9f, 300, -300, NAN, 3e10f}, {6})}});
  EXPECT_EQ(out[0].to_vector<int8_t>(), (std::vector<int8_t>{2, -2, 127, -128, 0, 127}));
  EXPECT_EQ(out[1].to_vector<uint8_t>(), (std::vector<uint8_t>{2, 0, 255, 0, 0, 255}));
  EXPECT_EQ(out[2].to_vector<int32_t>(),
            (std::vector<int32_t>{2, -2, 300, -300, 0, std::numeric_limits<int32_t>::max()}));
}

TEST(ElementwiseCast, IntegerNarrowingWrapsAndBoolIsNonZero) {
  Graph g;
  Tensor x = g.placeholder("x", {4}, DType::i32);
  auto out = run_once(g, {cast(x, DType::i8), cast(x, DType::boolean)},
                      {{"x", TensorData::from_vector<int32_t>({300, -129, 0, 256}, {4})}});
  EXPECT_EQ(out[0].to_vector<int8_t>(), (std::vector<int8_t>{44, 127, 0, 0}));
  EXPECT_EQ(out[1].to_vector<bool>(), (std::vector<bool>{true, true, false, true}));
}

// ---- operators and scalar overloads ----------------------------------------------------

TEST(ElementwiseOperators, TensorAndScalarOverloads) {
  for (DType dtype : {DType::f32, DType::f16, DType::bf16}) {
    Graph g;
    Tensor a = g.placeholder("a", {3, 4}, dtype);
    Tensor b = g.placeholder("b", {4}, dtype);
    std::vector<Tensor> ys = {a + b, a - b, a * b, a / b, -a, a + 2.0, a - 0.5, a * 3.0, a / 4.0};
    for (const Tensor& y : ys) {
      EXPECT_EQ(y.dtype(), dtype);
      EXPECT_EQ(y.shape(), (Shape{3, 4}));
    }
    TensorData ta = random_tensor(dtype, {3, 4}, -2, 2), tb = random_tensor(dtype, {4}, 0.5f, 2);
    auto out = run_once(g, ys, {{"a", ta}, {"b", tb}});
    const auto va = to_doubles(ta), vb = to_doubles(tb);
    const std::vector<std::function<double(double, double)>> refs = {
        [](double x, double y) { return x + y; }, [](double x, double y) { return x - y; },
        [](double x, double y) { return x * y; }, [](double x, double y) { return x / y; },
        [](double x, double) { return -x; },      [](double x, double) { return x + 2; },
        [](double x, double) { return x - 0.5; }, [](double x, double) { return x * 3; },
        [](double x, double) { return x / 4; }};
    for (size_t k = 0; k < ys.size(); ++k) {
      std::vector<double> want(12);
      for (size_t i = 0; i < 12; ++i) want[i] = refs[k](va[i], vb[i % 4]);
      expect_matches(out[k], want, describe(dtype, {3, 4}) + " overload " + std::to_string(k));
    }
  }
}

TEST(ElementwiseOperators, ScalarTakesTheIntegerTensorsDtype) {
  Graph g;
  Tensor a = g.placeholder("a", {4}, DType::i32);
  Tensor y = a * 3.0 / 2.0;
  EXPECT_EQ(y.dtype(), DType::i32);
  auto out = run_once(g, {y}, {{"a", TensorData::from_vector<int32_t>({1, -1, 5, -5}, {4})}});
  EXPECT_EQ(out[0].to_vector<int32_t>(), (std::vector<int32_t>{1, -1, 7, -7}));
}

// ---- layouts: strided feeds and strided kernel inputs ----------------------------------

TEST(ElementwiseLayout, NonContiguousFeedsGiveTheViewsValues) {
  for (DType dtype : {DType::f32, DType::bf16}) {
    // x is a transposed view of a [4, 6] buffer; z takes every other column from offset 1.
    TensorData base = random_tensor(dtype, {4, 6}, -2, 2);
    TensorData xt = base.view({6, 4}, {1, 6}, 0);
    TensorData base2 = random_tensor(dtype, {6, 9}, -2, 2);
    TensorData z = base2.view({6, 4}, {9, 2}, 1);
    ASSERT_FALSE(xt.is_contiguous());
    ASSERT_FALSE(z.is_contiguous());
    Graph g;
    Tensor x = g.placeholder("x", {6, 4}, dtype);
    Tensor w = g.placeholder("z", {6, 4}, dtype);
    auto out = run_once(g, {x + w, loom::exp(x), cast(w, DType::f32)}, {{"x", xt}, {"z", z}});
    const auto vb = to_doubles(base), vb2 = to_doubles(base2);
    std::vector<double> sum(24), ex(24), zc(24);
    for (size_t i = 0; i < 6; ++i)
      for (size_t j = 0; j < 4; ++j) {
        const double xv = vb[j * 6 + i], zv = vb2[i * 9 + 1 + 2 * j];
        sum[i * 4 + j] = xv + zv;
        ex[i * 4 + j] = std::exp(xv);
        zc[i * 4 + j] = zv;
      }
    expect_matches(out[0], sum, describe(dtype, {6, 4}) + " add of views");
    expect_matches(out[1], ex, describe(dtype, {6, 4}) + " exp of a view");
    expect_matches(out[2], zc, describe(dtype, {6, 4}) + " cast of a view");
  }
}

// The runtime hands kernels contiguous inputs today, but the CPU loop honours a view's
// strides; this calls the registered kernels directly on a transposed input (whose
// innermost stride is not 1, so the 16-bit paths read it element by element).
TEST(ElementwiseLayout, CpuKernelsReadStridedInputs) {
  Backend& cpu = backend_for(Device::cpu());
  KernelContext ctx{cpu};
  for (DType dtype : kFloatTypes) {
    const std::string what = std::string(dtype_name(dtype)) + " strided";
    Graph g;
    Tensor a = g.placeholder("a", {3, 5}, dtype);
    Tensor b = g.placeholder("b", {5}, dtype);
    Tensor ys[] = {sub(a, b), loom::exp(a), cast(a, DType::f32)};
    TensorData ta = random_tensor(dtype, {5, 3});  // stored transposed
    TensorData tb = random_tensor(dtype, {5});
    const auto va = to_doubles(ta), vb = to_doubles(tb);
    const std::vector<TensorView> in = {{ta.data(), dtype, {3, 5}, {1, 3}},
                                        {tb.data(), dtype, {5}, {1}}};
    const char* kernel_names[] = {"cpu.sub", "cpu.exp", "cpu.cast"};
    for (size_t k = 0; k < 3; ++k) {
      const Tensor& y = ys[k];
      const std::span<const TensorView> inputs(in.data(), y.node()->inputs.size());
      TensorData ty = TensorData::zeros(y.dtype(), {3, 5});
      std::vector<TensorView> out = {{ty.data(), y.dtype(), {3, 5}, {5, 1}}};
      const Kernel* kernel = cpu.find_kernel(*y.node(), inputs);
      ASSERT_NE(kernel, nullptr);
      EXPECT_EQ(kernel->name, kernel_names[k]);
      kernel->run(ctx, *y.node(), inputs, out);
      std::vector<double> want(15);
      for (size_t i = 0; i < 3; ++i)
        for (size_t j = 0; j < 5; ++j) {
          const double x = va[j * 3 + i];
          want[i * 5 + j] = k == 0 ? x - vb[j] : k == 1 ? std::exp(x) : x;
        }
      expect_matches(ty, want, what + " " + kernel_names[k]);
    }
  }
}

// Kernels keep their operand layout in per-node state after the first run; later runs
// with new data (and reused output buffers) must still be right.
TEST(ElementwiseLayout, RepeatedRunsReuseKernelState) {
  Graph g;
  Tensor a = g.placeholder("a", {7, 1, 5}, DType::f16);
  Tensor b = g.placeholder("b", {3, 5}, DType::f16);
  Tensor c = g.placeholder("c", {7, 3, 1}, DType::boolean);
  CompileOptions options;
  options.outputs = {where(c, a * b, cast(b, DType::f16)), cast(a - b, DType::f32)};
  Executable exe = compile(g, options);
  std::vector<TensorData> out;
  for (int run = 0; run < 3; ++run) {
    TensorData ta = random_tensor(DType::f16, {7, 1, 5}), tb = random_tensor(DType::f16, {3, 5});
    TensorData tc = random_integers(DType::boolean, {7, 3, 1}, 0, 1);
    exe.run({{"a", ta}, {"b", tb}, {"c", tc}}, out);
    ASSERT_EQ(out.size(), 2u);
    const auto va = to_doubles(ta), vb = to_doubles(tb), vc = to_doubles(tc);
    std::vector<double> selected(105), diff(105);
    for (size_t i = 0; i < 7; ++i)
      for (size_t j = 0; j < 3; ++j)
        for (size_t k = 0; k < 5; ++k) {
          const double x = va[i * 5 + k], y = vb[j * 5 + k];
          const double product = double(f16_to_float(float_to_f16(float(x * y))));
          selected[(i * 3 + j) * 5 + k] = vc[i * 3 + j] != 0 ? product : y;
          diff[(i * 3 + j) * 5 + k] = double(f16_to_float(float_to_f16(float(x - y))));
        }
    expect_matches(out[0], selected, "where, run " + std::to_string(run));
    expect_matches(out[1], diff, "cast of sub, run " + std::to_string(run));
  }
}

// ---- symbolic dims ---------------------------------------------------------------------

TEST(ElementwiseSymbolic, PlaceholderWithSymbolRunsForEachBinding) {
  Graph g;
  Tensor x = g.placeholder("x", {"n", 4});
  Tensor b = g.placeholder("b", {4});
  Tensor y = relu(x * b + 1.0);
  EXPECT_EQ(y.shape(), (Shape{"n", 4}));
  Tensor m = g.placeholder("m", {"n", 1});
  EXPECT_EQ((x + m).shape(), (Shape{"n", 4}));
  EXPECT_EQ(less(m, b).shape(), (Shape{"n", 4}));

  CompileOptions options;
  options.outputs = {y};
  Executable exe = compile(g, options);
  TensorData tb = random_tensor(DType::f32, {4});
  for (int64_t n : {3, 5, 3}) {
    TensorData tx = random_tensor(DType::f32, {n, 4});
    auto out = exe.run({{"x", tx}, {"b", tb}});
    ASSERT_EQ(out[0].shape(), (Extents{n, 4}));
    const auto vx = to_doubles(tx), vb = to_doubles(tb);
    std::vector<double> want(size_t(n * 4));
    for (size_t i = 0; i < want.size(); ++i) want[i] = std::max(0.0, vx[i] * vb[i % 4] + 1);
    expect_matches(out[0], want, "n = " + std::to_string(n));
  }
}

TEST(ElementwiseSymbolic, DifferentSymbolsAreCheckedWhenBound) {
  Graph g;
  Tensor x = g.placeholder("x", {"n", 4});
  Tensor z = g.placeholder("z", {"m", 4});
  Tensor y = x - z;
  EXPECT_EQ(y.shape().at(1), Dim(4));
  CompileOptions options;
  options.outputs = {y};
  Executable exe = compile(g, options);
  TensorData tx = random_tensor(DType::f32, {3, 4}), tz = random_tensor(DType::f32, {3, 4});
  auto out = exe.run({{"x", tx}, {"z", tz}});
  const auto vx = to_doubles(tx), vz = to_doubles(tz);
  std::vector<double> want(12);
  for (size_t i = 0; i < 12; ++i) want[i] = vx[i] - vz[i];
  expect_matches(out[0], want, "n = m = 3");
  try {
    exe.run({{"x", tx}, {"z", random_tensor(DType::f32, {5, 4})}});
    ADD_FAILURE() << "n = 3 and m = 5 were accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::shape) << e.what();
    EXPECT_NE(std::string(e.what()).find("sub"), std::string::npos) << e.what();
  }
}

// ---- errors ----------------------------------------------------------------------------

// Runs `build` and expects a loom::Error of `kind` whose message holds every one of `parts`.
void expect_error(const std::function<void()>& build, ErrorKind kind,
                  const std::vector<std::string>& parts) {
  try {
    build();
    ADD_FAILURE() << "no error; expected " << error_kind_name(kind);
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), kind) << e.what();
    for (const auto& part : parts)
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos)
          << "'" << part << "' missing from: " << e.what();
  }
}

TEST(ElementwiseErrors, ShapeMismatchNamesOpAndShapes) {
  Graph g;
  Tensor a = g.placeholder("a", {2, 3});
  Tensor b = g.placeholder("b", {4, 3});
  expect_error([&] { add(a, b); }, ErrorKind::shape, {"add", "[2, 3]", "[4, 3]"});
  expect_error([&] { (void)(a * b); }, ErrorKind::shape, {"mul", "[2, 3]", "[4, 3]"});
  expect_error([&] { greater(a, b); }, ErrorKind::shape, {"greater", "[2, 3]", "[4, 3]"});
  Tensor c = g.placeholder("c", {2, 3}, DType::boolean);
  expect_error([&] { where(c, a, b); }, ErrorKind::shape, {"where", "[2, 3]", "[4, 3]"});
  Tensor s = g.placeholder("s", {"n", 3});
  Tensor t = g.placeholder("t", {2, 5});
  expect_error([&] { sub(s, t); }, ErrorKind::shape, {"sub", "[n, 3]", "[2, 5]"});
}

TEST(ElementwiseErrors, DtypeMismatchNamesBothDtypes) {
  Graph g;
  Tensor a = g.placeholder("a", {2, 3}, DType::f32);
  Tensor h = g.placeholder("h", {2, 3}, DType::f16);
  Tensor i = g.placeholder("i", {2, 3}, DType::i32);
  expect_error([&] { add(a, h); }, ErrorKind::dtype, {"add", "f32", "f16"});
  expect_error([&] { equal(a, i); }, ErrorKind::dtype, {"equal", "f32", "i32"});
  expect_error([&] { (void)(h / a); }, ErrorKind::dtype, {"div", "f16", "f32"});
  Tensor c = g.placeholder("c", {2, 3}, DType::boolean);
  expect_error([&] { where(c, a, h); }, ErrorKind::dtype, {"where", "f32", "f16"});
}

TEST(ElementwiseErrors, UnsupportedDtypes) {
  Graph g;
  Tensor i = g.placeholder("i", {2, 3}, DType::i32);
  Tensor f = g.placeholder("f", {2, 3});
  Tensor c = g.placeholder("c", {2, 3}, DType::boolean);
  expect_error([&] { loom::exp(i); }, ErrorKind::dtype, {"exp", "i32"});
  expect_error([&] { gelu(i, GeluApproximation::tanh); }, ErrorKind::dtype, {"gelu_tanh", "i32"});
  expect_error([&] { add(c, c); }, ErrorKind::dtype, {"add", "bool"});
  expect_error([&] { less(c, c); }, ErrorKind::dtype, {"less", "bool"});
  expect_error([&] { neg(c); }, ErrorKind::dtype, {"neg", "bool"});
  expect_error([&] { where(f, f, f); }, ErrorKind::dtype, {"where", "condition", "bool"});
  expect_error([&] { cast(f, DType::c64); }, ErrorKind::dtype, {"cast", "c64"});
  Tensor packed = g.placeholder("p", {2, 4}, DType::i4);
  expect_error([&] { cast(packed, DType::f32); }, ErrorKind::dtype, {"cast", "i4"});
  expect_error([&] { mul(packed, packed); }, ErrorKind::dtype, {"mul", "i4"});
}

}  // namespace
