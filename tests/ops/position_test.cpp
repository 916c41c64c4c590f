// Position ops: arange against its definition, and rope against a double-precision
// reference for both pairings, partial rotation, scaled positions and run-time offsets.
#include <cmath>
#include <string>
#include <vector>

#include "ops/byte_reference.h"

namespace loom {
namespace {

using testing::expect_close;
using testing::expect_error;
using testing::random_tensor;
using testing::to_doubles;
using testing::tolerance_for;

// ---- arange -------------------------------------------------------------------------

TEST(PositionOps, ArangeValues) {
  struct Case {
    double start, stop, step;
    DType dtype;
  };
  const std::vector<Case> cases = {
      {0, 5, 1, DType::i64},      {1.5, 4, 0.5, DType::f32}, {5, 0, -2, DType::i32},
      {0, 1, 0.1, DType::f16},    {-3, 3, 1.5, DType::bf16}, {0, 10, 3, DType::i64},
      {0, 100000, 1, DType::f32},  // large enough to fill in parallel
  };
  for (const auto& c : cases) {
    Graph g;
    Tensor y = arange(g, c.start, c.stop, c.step, c.dtype);
    int64_t n = int64_t(std::ceil((c.stop - c.start) / c.step));
    EXPECT_EQ(y.shape(), (Shape{n}));
    EXPECT_EQ(y.dtype(), c.dtype);
    std::vector<double> want(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) want[size_t(i)] = c.start + double(i) * c.step;
    auto out = testing::run_once(g, {y}).at(0);
    ASSERT_EQ(out.shape(), (Extents{n}));
    expect_close(out, want, tolerance_for(c.dtype),
                 "arange(" + std::to_string(c.start) + ", " + std::to_string(c.stop) + ", " +
                     std::to_string(c.step) + ") " + dtype_name(c.dtype));
  }
}

TEST(PositionOps, ArangeDefaultsAndEmpty) {
  Graph g;
  Tensor y = arange(g, 0, 4);
  EXPECT_EQ(y.dtype(), DType::i64);
  Tensor empty = arange(g, 3, 1, 1, DType::f32);
  EXPECT_EQ(empty.shape(), (Shape{0}));
  auto out = testing::run_once(g, {y, empty});
  EXPECT_EQ(out[0].to_vector<int64_t>(), (std::vector<int64_t>{0, 1, 2, 3}));
  EXPECT_EQ(out[1].numel(), 0);
}

TEST(PositionOps, ArangeErrors) {
  Graph g;
  expect_error([&] { arange(g, 0, 4, 0); }, ErrorKind::value, {"arange", "step"});
  expect_error([&] { arange(g, 0, NAN, 1); }, ErrorKind::value, {"arange", "finite"});
  expect_error([&] { arange(g, 0, 4, 1, DType::boolean); }, ErrorKind::dtype, {"arange", "bool"});
  expect_error([&] { arange(g, 0, 1e30, 1e-30); }, ErrorKind::value, {"arange", "too long"});
}

// ---- rope ---------------------------------------------------------------------------

// Rotates pairs of features of x [..., S, D] by (offset + s) * scale * base^(-2i/dims).
std::vector<double> rope_reference(const TensorData& x, int64_t offset, const RopeOptions& o) {
  std::vector<double> in = to_doubles(x);
  std::vector<double> out = in;
  const Extents& shape = x.shape();
  int64_t d = shape.back(), s_count = shape[shape.size() - 2];
  int64_t dims = o.dims ? o.dims : d;
  int64_t rows = x.numel() / d;
  for (int64_t r = 0; r < rows; ++r) {
    int64_t s = r % s_count;
    double p = double(offset + s) * o.scale;
    for (int64_t i = 0; i < dims / 2; ++i) {
      double theta = p * std::pow(o.base, -2.0 * double(i) / double(dims));
      int64_t a = r * d + (o.interleaved ? 2 * i : i);
      int64_t b = r * d + (o.interleaved ? 2 * i + 1 : i + dims / 2);
      out[size_t(a)] = in[size_t(a)] * std::cos(theta) - in[size_t(b)] * std::sin(theta);
      out[size_t(b)] = in[size_t(a)] * std::sin(theta) + in[size_t(b)] * std::cos(theta);
    }
  }
  return out;
}

TensorData offset_tensor(int64_t value, DType dtype, Extents shape) {
  if (dtype == DType::i64) return TensorData::from_vector(std::vector<int64_t>{value}, shape);
  return TensorData::from_vector(std::vector<int32_t>{int32_t(value)}, shape);
}

struct RopeCase {
  Extents shape;
  RopeOptions options;
  DType offset_dtype;
  Extents offset_shape;
};

std::string case_name(const RopeCase& c, int64_t offset, DType dtype) {
  return "rope " + to_string(c.shape) + " dims " + std::to_string(c.options.dims) +
         (c.options.interleaved ? " interleaved" : " halves") + " base " +
         std::to_string(c.options.base) + " scale " + std::to_string(c.options.scale) + " offset " +
         std::to_string(offset) + " " + dtype_name(dtype);
}

TEST(PositionOps, RopeMatchesReference) {
  std::vector<RopeCase> cases;
  for (bool interleaved : {false, true}) {
    cases.push_back({{2, 3, 5, 8}, {10000, interleaved, 0, 1}, DType::i32, {1}});
    cases.push_back({{4, 7, 10}, {10000, interleaved, 6, 1}, DType::i64, {}});  // partial dims
    cases.push_back({{3, 6}, {500, interleaved, 4, 0.5}, DType::i64, {1}});     // scaled
    cases.push_back({{2, 1, 256}, {1e6, interleaved, 0, 1}, DType::i32, {}});   // 128 pairs
    cases.push_back({{1, 4, 64, 18}, {10000, interleaved, 16, 1}, DType::i32, {1}});
  }
  for (DType dtype : {DType::f32, DType::f16, DType::bf16})
    for (const auto& c : cases) {
      Graph g;
      Tensor x = g.placeholder("x", to_shape(c.shape), dtype);
      Tensor offset = g.placeholder("offset", to_shape(c.offset_shape), c.offset_dtype);
      Tensor y = rope(x, offset, c.options);
      EXPECT_EQ(y.shape(), to_shape(c.shape));
      EXPECT_EQ(y.dtype(), dtype);
      CompileOptions options;
      options.outputs = {y};
      Executable exe = compile(g, options);
      TensorData data = random_tensor(dtype, c.shape);
      // One executable serves every position: the offset is read at run time.
      for (int64_t offset_value : {0, 7, 1000}) {
        auto out = exe.run(
            {{"x", data}, {"offset", offset_tensor(offset_value, c.offset_dtype, c.offset_shape)}});
        expect_close(out.at(0), rope_reference(data, offset_value, c.options), tolerance_for(dtype),
                     case_name(c, offset_value, dtype));
      }
    }
}

// A hand-computed check that does not share the reference's formula: one pair rotated by
// exactly one radian, and position zero left alone.
TEST(PositionOps, RopeRotatesByThePosition) {
  Graph g;
  Tensor x = g.constant(TensorData::from_vector(std::vector<float>{1, 0, 0.5f, 2}, {2, 2}));
  Tensor y = rope(x, g.constant(TensorData::from_vector(std::vector<int32_t>{-1}, {1})));
  auto out = testing::run_once(g, {y}).at(0).to_vector<float>();
  // Row 0 is at position -1, row 1 at position 0.
  EXPECT_NEAR(out[0], std::cos(-1.0), 1e-6);
  EXPECT_NEAR(out[1], std::sin(-1.0), 1e-6);
  EXPECT_EQ(out[2], 0.5f);
  EXPECT_EQ(out[3], 2.0f);
}

TEST(PositionOps, RopeSymbolicSequence) {
  Graph g;
  Tensor x = g.placeholder("x", {1, "seq", 8}, DType::bf16);
  Tensor offset = g.placeholder("offset", {}, DType::i64);
  RopeOptions o;
  o.interleaved = true;
  Tensor y = rope(x, offset, o);
  EXPECT_EQ(y.shape(), (Shape{1, "seq", 8}));
  CompileOptions options;
  options.outputs = {y};
  Executable exe = compile(g, options);
  for (int64_t seq : {3, 1, 5}) {
    TensorData data = random_tensor(DType::bf16, {1, seq, 8});
    auto out = exe.run({{"x", data}, {"offset", offset_tensor(seq * 10, DType::i64, {})}});
    expect_close(out.at(0), rope_reference(data, seq * 10, o), tolerance_for(DType::bf16),
                 "seq " + std::to_string(seq));
  }
}

TEST(PositionOps, RopeErrors) {
  Graph g;
  Tensor x = g.placeholder("x", {2, 4, 8});
  Tensor offset = g.placeholder("offset", {1}, DType::i32);
  RopeOptions odd;
  odd.dims = 3;
  RopeOptions wide;
  wide.dims = 10;
  expect_error(
      [&] {
        rope(g.placeholder("xi", {2, 8}, DType::i32), offset);
      },
      ErrorKind::dtype, {"rope", "i32"});
  expect_error([&] { rope(x, g.placeholder("of", {1}, DType::f32)); }, ErrorKind::dtype,
               {"rope", "offset"});
  expect_error([&] { rope(x, g.placeholder("o2", {2}, DType::i32)); }, ErrorKind::shape,
               {"rope", "offset", "[2]"});
  expect_error([&] { rope(g.placeholder("x1", {8}), offset); }, ErrorKind::shape, {"rope", "[8]"});
  expect_error([&] { rope(x, offset, odd); }, ErrorKind::value, {"rope", "dims", "3"});
  expect_error([&] { rope(x, offset, wide); }, ErrorKind::shape, {"rope", "10", "8"});
  expect_error(
      [&] {
        rope(g.placeholder("x7", {2, 7}), offset);
      },
      ErrorKind::shape, {"rope", "[2, 7]", "even"});
}

}  // namespace
}  // namespace loom
