// sum, mean, max, min and argmax against double-precision references: single, multiple,
// negative and all axes, keepdims, size-one dims, integer dtypes, symbolic dims, errors.
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "test_util.h"

namespace loom {
namespace {

using testing::random_tensor;
using testing::to_doubles;
using testing::tolerance_for;
using testing::unravel;

enum class Reduction { sum, mean, max, min };

const char* reduction_name(Reduction r) {
  switch (r) {
    case Reduction::sum:
      return "sum";
    case Reduction::mean:
      return "mean";
    case Reduction::max:
      return "max";
    case Reduction::min:
      return "min";
  }
  return "?";
}

Tensor apply(Reduction r, const Tensor& x, std::vector<int64_t> axes, bool keepdims) {
  switch (r) {
    case Reduction::sum:
      return sum(x, axes, keepdims);
    case Reduction::mean:
      return mean(x, axes, keepdims);
    case Reduction::max:
      return max(x, axes, keepdims);
    case Reduction::min:
      return min(x, axes, keepdims);
  }
  return {};
}

// Reduces `x` over `axes` (empty: all) by visiting every input element once.
std::vector<double> reduce_reference(Reduction r, const std::vector<double>& x,
                                     const Extents& shape, std::vector<int64_t> axes, bool keepdims,
                                     Extents* out_shape) {
  const int rank = int(shape.size());
  std::vector<bool> reduced(size_t(rank), axes.empty());
  for (int64_t a : axes) reduced[size_t(a < 0 ? a + rank : a)] = true;
  Extents kept;  // the output shape with keepdims (same element order either way)
  out_shape->clear();
  for (int d = 0; d < rank; ++d) {
    kept.push_back(reduced[size_t(d)] ? 1 : shape[size_t(d)]);
    if (!reduced[size_t(d)] || keepdims) out_shape->push_back(kept.back());
  }
  const double init = r == Reduction::max   ? -std::numeric_limits<double>::infinity()
                      : r == Reduction::min ? std::numeric_limits<double>::infinity()
                                            : 0.0;
  std::vector<double> out(size_t(numel(kept)), init);
  int64_t count = numel(shape) / std::max<int64_t>(numel(kept), 1);
  for (int64_t flat = 0; flat < numel(shape); ++flat) {
    auto idx = unravel(flat, shape);
    int64_t o = 0;
    for (int d = 0; d < rank; ++d)
      o = o * kept[size_t(d)] + (reduced[size_t(d)] ? 0 : idx[size_t(d)]);
    double& acc = out[size_t(o)];
    double v = x[size_t(flat)];
    if (r == Reduction::max)
      acc = std::max(acc, v);
    else if (r == Reduction::min)
      acc = std::min(acc, v);
    else
      acc += v;
  }
  if (r == Reduction::mean)
    for (auto& v : out) v /= double(count);
  return out;
}

struct ReduceCase {
  Extents shape;
  std::vector<int64_t> axes;
};

const std::vector<ReduceCase> kCases = {
    {{3, 5, 7}, {1}},     {{3, 5, 7}, {-1}},      {{3, 5, 7}, {0}},       {{3, 5, 7}, {0, 2}},
    {{3, 5, 7}, {2, -3}}, {{3, 5, 7}, {}},        {{3, 5, 7}, {0, 1, 2}}, {{4, 1, 6}, {1}},
    {{4, 1, 6}, {0, 1}},  {{2, 3, 4, 5}, {1, 3}}, {{2, 3, 4, 5}, {0, 2}}, {{2, 3, 4, 5}, {-1, -2}},
    {{9}, {0}},           {{128, 1000}, {1}},     {{1000, 130}, {0}},     {{64, 40, 30}, {0, 2}},
    {{1, 1}, {}},
};

std::string case_name(Reduction r, const ReduceCase& c, bool keepdims) {
  std::string axes;
  for (auto a : c.axes) axes += std::to_string(a) + " ";
  return std::string(reduction_name(r)) + " of " + to_string(c.shape) + " over {" + axes + "}" +
         (keepdims ? " keepdims" : "");
}

TensorData run_reduction(Reduction r, const TensorData& x, std::vector<int64_t> axes,
                         bool keepdims) {
  Graph g;
  Tensor p = g.placeholder("x", to_shape(x.shape()), x.dtype());
  return testing::run_once(g, {apply(r, p, std::move(axes), keepdims)}, {{"x", x}}).at(0);
}

class ReduceTest : public ::testing::TestWithParam<DType> {};

TEST_P(ReduceTest, MatchesReference) {
  const DType dtype = GetParam();
  for (Reduction r : {Reduction::sum, Reduction::mean, Reduction::max, Reduction::min})
    for (const auto& c : kCases)
      for (bool keepdims : {false, true}) {
        // An offset keeps sums away from zero so that a relative tolerance means something.
        TensorData x = random_tensor(dtype, c.shape, -0.5f, 1.5f);
        Extents shape;
        auto want = reduce_reference(r, to_doubles(x), c.shape, c.axes, keepdims, &shape);
        TensorData got = run_reduction(r, x, c.axes, keepdims);
        EXPECT_EQ(got.dtype(), dtype);
        ASSERT_EQ(got.shape(), shape) << case_name(r, c, keepdims);
        // max and min pick an input element, which the output dtype holds exactly. sum and
        // mean accumulate `count` terms of magnitude <= 1.5 (mean's divided by count).
        const int64_t count = numel(c.shape) / std::max<int64_t>(numel(shape), 1);
        testing::Tolerance tol;
        if (r == Reduction::sum) tol = testing::accumulation_tolerance(dtype, count, 1.5);
        if (r == Reduction::mean)
          tol = testing::accumulation_tolerance(dtype, count, 1.5 / double(count));
        testing::expect_close(got, want, tol, case_name(r, c, keepdims));
      }
}

TEST_P(ReduceTest, SymbolicBatch) {
  const DType dtype = GetParam();
  Graph g;
  Tensor x = g.placeholder("x", {"batch", 6, 4}, dtype);
  Tensor s = sum(x, {1});
  Tensor m = max(x, {0}, true);
  EXPECT_EQ(s.shape(), (Shape{"batch", 4}));
  EXPECT_EQ(m.shape(), (Shape{1, 6, 4}));
  for (int64_t batch : {1, 3}) {
    TensorData xd = random_tensor(dtype, {batch, 6, 4});
    auto got = testing::run_once(g, {s, m}, {{"x", xd}});
    Extents shape;
    auto want_sum =
        reduce_reference(Reduction::sum, to_doubles(xd), xd.shape(), {1}, false, &shape);
    ASSERT_EQ(got[0].shape(), shape);
    testing::expect_close(got[0], want_sum, testing::accumulation_tolerance(dtype, 6), "sum");
    auto want_max = reduce_reference(Reduction::max, to_doubles(xd), xd.shape(), {0}, true, &shape);
    ASSERT_EQ(got[1].shape(), shape);
    testing::expect_close(got[1], want_max, {}, "max");
  }
}

TEST_P(ReduceTest, ArgmaxMatchesReference) {
  const DType dtype = GetParam();
  for (const ReduceCase& c : std::vector<ReduceCase>{{{3, 5, 7}, {0}},
                                                     {{3, 5, 7}, {1}},
                                                     {{3, 5, 7}, {-1}},
                                                     {{4, 1, 6}, {1}},
                                                     {{128, 1000}, {1}},
                                                     {{11}, {0}}})
    for (bool keepdims : {false, true}) {
      TensorData x = random_tensor(dtype, c.shape);
      Graph g;
      Tensor p = g.placeholder("x", to_shape(c.shape), dtype);
      TensorData got = testing::run_once(g, {argmax(p, c.axes[0], keepdims)}, {{"x", x}}).at(0);
      ASSERT_EQ(got.dtype(), DType::i64);
      // Reference: first index of the max along the axis.
      const int rank = int(c.shape.size());
      const int axis = int(c.axes[0] < 0 ? c.axes[0] + rank : c.axes[0]);
      Extents shape;
      auto maxima =
          reduce_reference(Reduction::max, to_doubles(x), c.shape, c.axes, keepdims, &shape);
      ASSERT_EQ(got.shape(), shape) << case_name(Reduction::max, c, keepdims);
      auto xs = to_doubles(x);
      std::vector<int64_t> want(maxima.size(), -1);
      Extents kept = c.shape;
      kept[size_t(axis)] = 1;
      for (int64_t flat = 0; flat < numel(c.shape); ++flat) {
        auto idx = unravel(flat, c.shape);
        int64_t pos = idx[size_t(axis)];
        idx[size_t(axis)] = 0;
        int64_t o = 0;
        for (int d = 0; d < rank; ++d) o = o * kept[size_t(d)] + idx[size_t(d)];
        if (want[size_t(o)] < 0 && xs[size_t(flat)] == maxima[size_t(o)]) want[size_t(o)] = pos;
      }
      EXPECT_EQ(got.to_vector<int64_t>(), want) << case_name(Reduction::max, c, keepdims);
    }
}

INSTANTIATE_TEST_SUITE_P(Floats, ReduceTest, ::testing::Values(DType::f32, DType::f16, DType::bf16),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

TEST(ReduceInt, SumMaxMinAreExact) {
  for (DType dtype : {DType::i32, DType::i64, DType::i8})
    for (Reduction r : {Reduction::sum, Reduction::max, Reduction::min})
      for (const ReduceCase& c :
           std::vector<ReduceCase>{{{3, 5, 7}, {1}}, {{2, 3, 4, 5}, {1, 3}}, {{6, 7}, {}}}) {
        // i8 values of magnitude <= 2 keep every sum here (at most 42 terms) within range.
        float bound = dtype == DType::i8 ? 2.f : 1000.f;
        TensorData x = random_tensor(dtype, c.shape, -bound, bound);
        Extents shape;
        auto want = reduce_reference(r, to_doubles(x), c.shape, c.axes, false, &shape);
        TensorData got = run_reduction(r, x, c.axes, false);
        ASSERT_EQ(got.dtype(), dtype);
        ASSERT_EQ(got.shape(), shape);
        auto g = got.to_floats();
        for (size_t i = 0; i < want.size(); ++i)
          ASSERT_EQ(double(g[i]), want[i]) << case_name(r, c, false) << " " << dtype_name(dtype);
      }
}

TEST(ReduceInt, ArgmaxOfIntegers) {
  TensorData x = TensorData::from_vector<int32_t>({4, 9, 9, 1, -3, -3, -7, -3}, {2, 4});
  Graph g;
  Tensor p = g.placeholder("x", {2, 4}, DType::i32);
  auto got = testing::run_once(g, {argmax(p, 1)}, {{"x", x}}).at(0);
  EXPECT_EQ(got.to_vector<int64_t>(), (std::vector<int64_t>{1, 0}));
}

TEST(ReduceSpecial, ArgmaxTakesFirstMaximumAndNaN) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  TensorData x = TensorData::from_vector<float>({1, 3, 3, 2, 5, nan, 7, nan}, {2, 4});
  Graph g;
  Tensor p = g.placeholder("x", {2, 4});
  auto got = testing::run_once(g, {argmax(p, -1, true)}, {{"x", x}}).at(0);
  EXPECT_EQ(got.shape(), (Extents{2, 1}));
  EXPECT_EQ(got.to_vector<int64_t>(), (std::vector<int64_t>{1, 1}));
}

TEST(ReduceSpecial, MaxAndMinPropagateNaN) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  TensorData x = TensorData::from_vector<float>({1, nan, 3, 2, 5, 4}, {2, 3});
  auto mx = run_reduction(Reduction::max, x, {1}, false).to_vector<float>();
  auto mn = run_reduction(Reduction::min, x, {1}, false).to_vector<float>();
  EXPECT_TRUE(std::isnan(mx[0]));
  EXPECT_TRUE(std::isnan(mn[0]));
  EXPECT_EQ(mx[1], 5.f);
  EXPECT_EQ(mn[1], 2.f);
}

TEST(ReduceSpecial, ScalarInput) {
  TensorData x = TensorData::from_vector<float>({2.5f}, {});
  auto got = run_reduction(Reduction::sum, x, {}, false);
  EXPECT_EQ(got.shape(), Extents{});
  EXPECT_EQ(got.to_vector<float>(), std::vector<float>{2.5f});
}

TEST(ReduceSpecial, SumOverEmptyAxisIsZero) {
  Graph g;
  Tensor p = g.placeholder("x", {3, 0});
  auto got = testing::run_once(g, {sum(p, {1})}, {{"x", TensorData::zeros(DType::f32, {3, 0})}});
  EXPECT_EQ(got.at(0).to_vector<float>(), (std::vector<float>{0, 0, 0}));
}

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

TEST(ReduceErrors, AxisOutOfRange) {
  Graph g;
  Tensor x = g.placeholder("x", {3, 5, 7});
  expect_error([&] { sum(x, {3}); }, ErrorKind::shape, {"sum", "[3, 5, 7]", "axis 3"});
  expect_error([&] { mean(x, {-4}); }, ErrorKind::shape, {"mean", "axis -4"});
  expect_error([&] { max(x, {0, 0}); }, ErrorKind::shape, {"max", "repeated"});
  expect_error([&] { min(x, {1, -2}); }, ErrorKind::shape, {"min"});
  expect_error([&] { argmax(x, 3); }, ErrorKind::shape, {"argmax", "axis 3"});
  expect_error([&] { argmax(x, -4); }, ErrorKind::shape, {"argmax"});
}

TEST(ReduceErrors, DTypes) {
  Graph g;
  Tensor i = g.placeholder("i", {3, 4}, DType::i32);
  Tensor b = g.placeholder("b", {3, 4}, DType::boolean);
  expect_error([&] { mean(i, {1}); }, ErrorKind::dtype, {"mean", "i32"});
  expect_error([&] { sum(b, {1}); }, ErrorKind::dtype, {"sum"});
  expect_error([&] { argmax(b, 0); }, ErrorKind::dtype, {"argmax"});
}

TEST(ReduceErrors, MaxOverEmptyAxis) {
  Graph g;
  Tensor x = g.placeholder("x", {3, 0});
  expect_error([&] { max(x, {1}); }, ErrorKind::shape, {"max", "size 0"});
  expect_error([&] { argmax(x, 1); }, ErrorKind::shape, {"argmax"});
  EXPECT_EQ(max(x, {0}).shape(), (Shape{0}));  // reducing a non-empty axis is fine
}

}  // namespace
}  // namespace loom
