// Slice ops (slice, dynamic_slice, slice_update and its in-place form, gather) against
// exact index-map references on every data dtype: python slicing with negative and
// clamped bounds, run-time starts that need clamping, out-of-range gather indices, errors.
#include <algorithm>
#include <limits>
#include <string>
#include <vector>

#include "ops/byte_reference.h"

namespace loom {
namespace {

using testing::expect_error;
using testing::expect_same_elements;
using testing::kMoveDTypes;
using testing::pick_elements;
using testing::random_data;
using testing::ravel;
using testing::unravel;

constexpr int64_t kEnd = std::numeric_limits<int64_t>::max();

std::string dtype_label(DType d) { return std::string(" (") + dtype_name(d) + ")"; }
std::string list(const std::vector<int64_t>& v) { return to_string(Extents(v.begin(), v.end())); }

// ---- slice --------------------------------------------------------------------------

struct SliceCase {
  std::vector<int64_t> axes, starts, stops, steps;
};

// The indices python's x[start:stop:step] visits along a dim of `n`.
std::vector<int64_t> python_range(int64_t n, int64_t start, int64_t stop, int64_t step) {
  if (start < 0) start = std::max<int64_t>(start + n, 0);
  if (stop < 0) stop = std::max<int64_t>(stop + n, 0);
  start = std::min(start, n);
  stop = std::min(stop, n);
  std::vector<int64_t> out;
  for (int64_t i = start; i < stop; i += step) out.push_back(i);
  return out;
}

std::vector<uint8_t> slice_reference(const TensorData& x, const SliceCase& c, Extents* shape) {
  const Extents& in = x.shape();
  std::vector<std::vector<int64_t>> picked(in.size());
  for (size_t d = 0; d < in.size(); ++d) picked[d] = python_range(in[d], 0, in[d], 1);
  for (size_t i = 0; i < c.starts.size(); ++i) {
    int64_t a = c.axes.empty() ? int64_t(i) : c.axes[i];
    if (a < 0) a += int64_t(in.size());
    picked[size_t(a)] =
        python_range(in[size_t(a)], c.starts[i], c.stops[i], c.steps.empty() ? 1 : c.steps[i]);
  }
  shape->clear();
  for (const auto& p : picked) shape->push_back(int64_t(p.size()));
  Extents out_shape = *shape;
  return pick_elements(x, numel(out_shape), [&](int64_t i) {
    auto idx = unravel(i, out_shape);
    for (size_t d = 0; d < idx.size(); ++d) idx[d] = picked[d][size_t(idx[d])];
    return ravel(idx, in);
  });
}

std::string case_name(const SliceCase& c) {
  return "axes " + list(c.axes) + " starts " + list(c.starts) + " stops " + list(c.stops) +
         " steps " + list(c.steps);
}

void check_slices(const Extents& shape, const std::vector<SliceCase>& cases) {
  for (DType dtype : kMoveDTypes)
    for (const auto& c : cases) {
      TensorData x = random_data(dtype, shape);
      Graph g;
      Tensor y =
          slice(g.placeholder("x", to_shape(shape), dtype), c.axes, c.starts, c.stops, c.steps);
      Extents want_shape;
      auto want = slice_reference(x, c, &want_shape);
      EXPECT_EQ(y.shape(), to_shape(want_shape)) << case_name(c);
      auto out = testing::run_once(g, {y}, {{"x", x}}).at(0);
      expect_same_elements(out, want_shape, want, case_name(c) + dtype_label(dtype));
    }
}

TEST(SliceOps, SliceMatchesPython) {
  check_slices({7, 9, 5}, {
                              {{0}, {2}, {5}, {1}},
                              {{1}, {-4}, {100}, {2}},               // negative start, clamped stop
                              {{0, 2}, {-100, 1}, {-2, 5}, {3, 2}},  // clamped start, step 3
                              {{-1}, {0}, {kEnd}, {3}},
                              {{2, 0}, {1, 6}, {4, kEnd}, {}},  // axes out of order
                              {{}, {1, 2}, {6, 8}, {}},         // leading axes
                              {{1}, {8}, {9}, {1}},             // one element
                              {{0, 1, 2}, {1, -9, -3}, {-1, -1, kEnd}, {2, 3, 2}},
                          });
}

TEST(SliceOps, SliceLargeRowsInParallel) {
  check_slices({300, 260}, {{{0, 1}, {1, 3}, {299, 259}, {1, 1}}, {{1}, {0}, {kEnd}, {2}}});
}

TEST(SliceOps, SliceToEmpty) {
  check_slices({4, 6}, {{{1}, {5}, {2}, {1}}, {{0}, {10}, {kEnd}, {1}}});
}

TEST(SliceOps, SliceSymbolicDim) {
  Graph g;
  Tensor x = g.placeholder("x", {"seq", 6});
  Tensor whole = slice(x, {0}, {0}, {kEnd});
  Tensor tail = slice(x, {0, 1}, {-2, 1}, {kEnd, kEnd}, {1, 2});
  EXPECT_EQ(whole.shape(), (Shape{"seq", 6}));
  EXPECT_FALSE(tail.shape()[0].is_static());
  EXPECT_EQ(tail.shape()[1], Dim(3));
  CompileOptions options;
  options.outputs = {whole, tail};
  Executable exe = compile(g, options);
  for (int64_t seq : {5, 1}) {
    TensorData data = random_data(DType::f32, {seq, 6});
    auto out = exe.run({{"x", data}});
    Extents want_shape;
    auto want = slice_reference(data, {{0}, {0}, {kEnd}, {}}, &want_shape);
    expect_same_elements(out[0], want_shape, want, "whole seq=" + std::to_string(seq));
    want = slice_reference(data, {{0, 1}, {-2, 1}, {kEnd, kEnd}, {1, 2}}, &want_shape);
    expect_same_elements(out[1], want_shape, want, "tail seq=" + std::to_string(seq));
  }
}

TEST(SliceOps, SliceErrors) {
  Graph g;
  Tensor x = g.placeholder("x", {4, 6});
  expect_error([&] { slice(x, {0}, {0}, {4}, {0}); }, ErrorKind::value,
               {"slice", "[4, 6]", "step"});
  expect_error([&] { slice(x, {0}, {4}, {0}, {-1}); }, ErrorKind::value, {"slice", "step"});
  expect_error([&] { slice(x, {0}, {0, 1}, {4}); }, ErrorKind::value, {"slice", "[0, 1]"});
  expect_error([&] { slice(x, {0, 1}, {0}, {4}); }, ErrorKind::value, {"slice"});
  expect_error([&] { slice(x, {2}, {0}, {1}); }, ErrorKind::shape, {"slice", "axis 2"});
  expect_error([&] { slice(x, {1, -1}, {0, 0}, {1, 1}); }, ErrorKind::shape, {"slice", "repeated"});
  expect_error(
      [&] {
        slice(x, std::vector<int64_t>{}, {0, 0, 0}, {1, 1, 1});
      },
      ErrorKind::shape, {"slice", "rank 2"});
}

// ---- dynamic_slice ------------------------------------------------------------------

// The window of `sizes` on `axes` at `starts`, each start clamped into [0, dim - size].
std::vector<uint8_t> window_reference(const TensorData& x, const std::vector<int64_t>& axes,
                                      const std::vector<int64_t>& sizes,
                                      const std::vector<int64_t>& starts, Extents* shape) {
  const Extents& in = x.shape();
  *shape = in;
  std::vector<int64_t> first(in.size(), 0);
  for (size_t i = 0; i < axes.size(); ++i) {
    size_t a = size_t(axes[i] < 0 ? axes[i] + int64_t(in.size()) : axes[i]);
    (*shape)[a] = sizes[i];
    first[a] = std::clamp(starts[i], int64_t(0), in[a] - sizes[i]);
  }
  Extents out_shape = *shape;
  return pick_elements(x, numel(out_shape), [&](int64_t i) {
    auto idx = unravel(i, out_shape);
    for (size_t d = 0; d < idx.size(); ++d) idx[d] += first[d];
    return ravel(idx, in);
  });
}

TensorData index_tensor(const std::vector<int64_t>& values, DType dtype, Extents shape) {
  if (dtype == DType::i64) return TensorData::from_vector(values, std::move(shape));
  std::vector<int32_t> narrow(values.begin(), values.end());
  return TensorData::from_vector(narrow, std::move(shape));
}

TEST(SliceOps, DynamicSliceWithRunTimeStarts) {
  struct Case {
    std::vector<int64_t> axes, sizes;
  };
  const std::vector<Case> cases = {{{0, 2}, {3, 2}}, {{2, 0}, {2, 3}}, {{-2}, {8}}, {{1}, {1}}};
  // In range, past the end (clamped back), negative (clamped to zero), far out both ways.
  const std::vector<std::vector<int64_t>> starts = {{1, 2}, {5, 4}, {-2, 1}, {100, -100}};
  for (DType dtype : kMoveDTypes)
    for (DType index_dtype : {DType::i32, DType::i64})
      for (const auto& c : cases) {
        Graph g;
        int64_t n = int64_t(c.axes.size());
        Tensor x = g.placeholder("x", {6, 8, 5}, dtype);
        Tensor y = slice(x, g.placeholder("starts", {n}, index_dtype), c.axes, c.sizes);
        CompileOptions options;
        options.outputs = {y};
        Executable exe = compile(g, options);
        TensorData data = random_data(dtype, {6, 8, 5});
        for (auto s : starts) {
          s.resize(size_t(n));
          Extents want_shape;
          auto want = window_reference(data, c.axes, c.sizes, s, &want_shape);
          auto out = exe.run({{"x", data}, {"starts", index_tensor(s, index_dtype, {n})}});
          expect_same_elements(out.at(0), want_shape, want,
                               "axes " + list(c.axes) + " sizes " + list(c.sizes) + " starts " +
                                   list(s) + dtype_label(dtype) + dtype_label(index_dtype));
        }
      }
}

TEST(SliceOps, DynamicSliceSymbolicDim) {
  Graph g;
  Tensor x = g.placeholder("x", {"seq", 4});
  Tensor y = slice(x, g.placeholder("starts", {1}, DType::i32), {0}, {2});
  EXPECT_EQ(y.shape(), (Shape{2, 4}));
  TensorData data = random_data(DType::f32, {7, 4});
  Extents want_shape;
  auto want = window_reference(data, {0}, {2}, {6}, &want_shape);
  auto out =
      testing::run_once(g, {y}, {{"x", data}, {"starts", index_tensor({6}, DType::i32, {1})}});
  expect_same_elements(out.at(0), want_shape, want, "symbolic dynamic_slice");
}

TEST(SliceOps, DynamicSliceErrors) {
  Graph g;
  Tensor x = g.placeholder("x", {4, 6});
  Tensor s1 = g.placeholder("s1", {1}, DType::i32);
  Tensor s2 = g.placeholder("s2", {2}, DType::i64);
  Tensor sf = g.placeholder("sf", {1}, DType::f32);
  expect_error([&] { slice(x, sf, {0}, {2}); }, ErrorKind::dtype, {"dynamic_slice", "f32"});
  expect_error([&] { slice(x, s2, {0}, {2}); }, ErrorKind::shape, {"dynamic_slice", "[1]", "[2]"});
  expect_error([&] { slice(x, s1, {1}, {7}); }, ErrorKind::shape, {"dynamic_slice", "7"});
  expect_error([&] { slice(x, s1, {2}, {1}); }, ErrorKind::shape, {"dynamic_slice", "axis 2"});
  expect_error([&] { slice(x, s1, {0}, {1, 1}); }, ErrorKind::value, {"dynamic_slice"});
}

// ---- slice_update -------------------------------------------------------------------

// x with the window at the clamped starts replaced by update.
std::vector<uint8_t> update_reference(const TensorData& x, const TensorData& update,
                                      const std::vector<int64_t>& starts) {
  const Extents& in = x.shape();
  const Extents& up = update.shape();
  std::vector<int64_t> first(in.size());
  for (size_t d = 0; d < in.size(); ++d)
    first[d] = std::clamp(starts[d], int64_t(0), in[d] - up[d]);
  std::vector<uint8_t> out = testing::bytes_of(x);
  std::vector<uint8_t> u = testing::bytes_of(update);
  size_t es = testing::element_size(x.dtype());
  for (int64_t i = 0; i < numel(up); ++i) {
    auto idx = unravel(i, up);
    for (size_t d = 0; d < idx.size(); ++d) idx[d] += first[d];
    std::memcpy(&out[size_t(ravel(idx, in)) * es], &u[size_t(i) * es], es);
  }
  return out;
}

TEST(SliceOps, SliceUpdateWithRunTimeStarts) {
  const std::vector<std::vector<int64_t>> starts = {
      {0, 0, 0}, {3, 4, 0}, {4, 6, 1}, {-1, 2, 0}, {100, -100, 7}};
  for (DType dtype : kMoveDTypes)
    for (DType index_dtype : {DType::i32, DType::i64})
      for (const Extents& up : {Extents{2, 3, 3}, Extents{1, 7, 1}, Extents{5, 7, 3}}) {
        Graph g;
        Tensor x = g.placeholder("x", {5, 7, 3}, dtype);
        Tensor u = g.placeholder("u", to_shape(up), dtype);
        Tensor y = slice_update(x, u, g.placeholder("starts", {3}, index_dtype));
        CompileOptions options;
        options.outputs = {y};
        Executable exe = compile(g, options);
        TensorData data = random_data(dtype, {5, 7, 3});
        TensorData update = random_data(dtype, up);
        for (const auto& s : starts) {
          auto out =
              exe.run({{"x", data}, {"u", update}, {"starts", index_tensor(s, index_dtype, {3})}});
          expect_same_elements(out.at(0), {5, 7, 3}, update_reference(data, update, s),
                               "update " + to_string(up) + " at " + list(s) + dtype_label(dtype) +
                                   dtype_label(index_dtype));
        }
      }
}

TEST(SliceOps, SliceUpdateWithConstantStarts) {
  TensorData data = random_data(DType::bf16, {4, 5});
  TensorData update = random_data(DType::bf16, {2, 2});
  Graph g;
  Tensor y = slice_update(g.placeholder("x", {4, 5}, DType::bf16), g.constant(update), {1, 9});
  auto out = testing::run_once(g, {y}, {{"x", data}}).at(0);
  expect_same_elements(out, {4, 5}, update_reference(data, update, {1, 9}), "constant starts");
}

// The KV-cache pattern: assign(var, slice_update(read(var), ...)) becomes an in-place
// write of the window; the variable must hold every step's row afterwards.
TEST(SliceOps, SliceUpdateOfVariableRunsInPlace) {
  for (DType dtype : {DType::f32, DType::f16, DType::i32}) {
    TensorData initial = random_data(dtype, {4, 6});
    Graph g;
    Tensor cache = g.variable("cache", initial);
    Tensor row = g.placeholder("row", {1, 6}, dtype);
    Tensor step = g.placeholder("step", {2}, DType::i32);
    g.assign(cache, slice_update(g.read(cache), row, step));
    Executable exe = compile(g, {});
    EXPECT_NE(exe.dump().find("slice_update_inplace"), std::string::npos) << exe.dump();
    TensorData expected = initial.clone();
    for (int64_t s : {0, 2, 1, 7}) {  // 7 is clamped to the last row
      TensorData r = random_data(dtype, {1, 6});
      exe.run({{"row", r}, {"step", index_tensor({s, 0}, DType::i32, {2})}});
      auto want = update_reference(expected, r, {s, 0});
      expected = TensorData::from_pointer(want.data(), dtype, {4, 6});
      expect_same_elements(exe.variables().get("cache"), {4, 6}, want,
                           "step " + std::to_string(s) + dtype_label(dtype));
    }
  }
}

// The in-place op writes only the window: built directly on a variable read, the bytes
// outside the window must stay those of the variable.
TEST(SliceOps, SliceUpdateInplaceWritesTheWindow) {
  // The internal op is made by the in-place pass from assign(v, slice_update(read(v), ...)).
  TensorData initial = random_data(DType::i64, {3, 4});
  TensorData update = random_data(DType::i64, {2, 2});
  Graph g;
  Tensor cache = g.variable("cache", initial);
  Tensor starts = g.placeholder("starts", {2}, DType::i64);
  g.assign(cache, slice_update(g.read(cache), g.constant(update), starts));
  Executable exe = compile(g, {});
  EXPECT_NE(exe.dump().find("slice_update_inplace"), std::string::npos) << exe.dump();
  exe.run({{"starts", index_tensor({1, 1}, DType::i64, {2})}});
  expect_same_elements(exe.variables().get("cache"), {3, 4},
                       update_reference(initial, update, {1, 1}), "inplace");
}

TEST(SliceOps, SliceUpdateErrors) {
  Graph g;
  Tensor x = g.placeholder("x", {4, 6});
  Tensor s = g.placeholder("s", {2}, DType::i32);
  Tensor u = g.placeholder("u", {2, 2});
  expect_error(
      [&] {
        slice_update(x, g.placeholder("uh", {2, 2}, DType::f16), s);
      },
      ErrorKind::dtype, {"slice_update", "f16"});
  expect_error(
      [&] {
        slice_update(x, g.placeholder("u3", {1, 2, 2}), s);
      },
      ErrorKind::shape, {"slice_update", "rank"});
  expect_error(
      [&] {
        slice_update(x, g.placeholder("ub", {5, 2}), s);
      },
      ErrorKind::shape, {"slice_update", "[5, 2]", "larger"});
  expect_error([&] { slice_update(x, u, g.placeholder("sf", {2}, DType::f32)); }, ErrorKind::dtype,
               {"slice_update", "starts"});
  expect_error([&] { slice_update(x, u, g.placeholder("s3", {3}, DType::i64)); }, ErrorKind::shape,
               {"slice_update", "starts", "[2]"});
}

// ---- gather -------------------------------------------------------------------------

std::vector<uint8_t> gather_reference(const TensorData& table, const std::vector<int64_t>& index,
                                      const Extents& index_shape, int axis, Extents* shape) {
  const Extents& t = table.shape();
  shape->assign(t.begin(), t.begin() + axis);
  shape->insert(shape->end(), index_shape.begin(), index_shape.end());
  shape->insert(shape->end(), t.begin() + axis + 1, t.end());
  Extents out_shape = *shape;
  int ir = int(index_shape.size());
  return pick_elements(table, numel(out_shape), [&](int64_t i) -> int64_t {
    auto o = unravel(i, out_shape);
    std::vector<int64_t> pos(o.begin() + axis, o.begin() + axis + ir);
    int64_t row = index[size_t(ravel(pos, index_shape))];
    if (row < 0 || row >= t[size_t(axis)]) return -1;  // zeros
    std::vector<int64_t> idx(o.begin(), o.begin() + axis);
    idx.push_back(row);
    idx.insert(idx.end(), o.begin() + axis + ir, o.end());
    return ravel(idx, t);
  });
}

TEST(SliceOps, GatherRows) {
  struct Case {
    Extents table;
    std::vector<int64_t> index;
    Extents index_shape;
    int64_t axis;
  };
  const std::vector<Case> cases = {
      {{5, 3}, {4, 0, 5, 2, -1, 4}, {2, 3}, 0},  // 5 and -1 are out of range
      {{5, 3}, {2}, {}, 0},                      // scalar index drops the axis
      {{4, 6, 2}, {5, 0, 3}, {3}, 1},
      {{4, 6, 2}, {1, 1, 0, 2}, {2, 2}, -1},  // 2 is out of range
      {{1000, 64}, {999, 0, 500, 1000, 7, 3, 3}, {7}, 0},
  };
  for (DType dtype : kMoveDTypes)
    for (DType index_dtype : {DType::i32, DType::i64})
      for (const auto& c : cases) {
        TensorData table = random_data(dtype, c.table);
        Graph g;
        Tensor t = g.placeholder("table", to_shape(c.table), dtype);
        Tensor i = g.placeholder("index", to_shape(c.index_shape), index_dtype);
        Tensor y = gather(t, i, c.axis);
        int axis = int(c.axis < 0 ? c.axis + int64_t(c.table.size()) : c.axis);
        Extents want_shape;
        auto want = gather_reference(table, c.index, c.index_shape, axis, &want_shape);
        EXPECT_EQ(y.shape(), to_shape(want_shape));
        auto out = testing::run_once(
            g, {y},
            {{"table", table}, {"index", index_tensor(c.index, index_dtype, c.index_shape)}});
        expect_same_elements(out.at(0), want_shape, want,
                             "gather " + to_string(c.table) + " by " + list(c.index) + " axis " +
                                 std::to_string(c.axis) + dtype_label(dtype) +
                                 dtype_label(index_dtype));
      }
}

TEST(SliceOps, GatherSymbolicIndices) {
  Graph g;
  TensorData table = random_data(DType::f16, {10, 4});
  Tensor y = gather(g.constant(table), g.placeholder("tokens", {"seq"}, DType::i32));
  EXPECT_EQ(y.shape(), (Shape{"seq", 4}));
  std::vector<int64_t> tokens = {3, 9, 0};
  Extents want_shape;
  auto want = gather_reference(table, tokens, {3}, 0, &want_shape);
  auto out = testing::run_once(g, {y}, {{"tokens", index_tensor(tokens, DType::i32, {3})}});
  expect_same_elements(out.at(0), want_shape, want, "symbolic gather");
}

TEST(SliceOps, GatherErrors) {
  Graph g;
  Tensor t = g.placeholder("t", {5, 3});
  Tensor i = g.placeholder("i", {2}, DType::i32);
  expect_error([&] { gather(t, g.placeholder("f", {2}, DType::f32)); }, ErrorKind::dtype,
               {"gather", "indices"});
  expect_error([&] { gather(t, i, 2); }, ErrorKind::shape, {"gather", "axis 2"});
  expect_error([&] { gather(g.placeholder("s", {}), i); }, ErrorKind::shape, {"gather"});
}

}  // namespace
}  // namespace loom
