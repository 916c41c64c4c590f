// Shape ops (reshape, transpose, broadcast_to, concat, split) against exact index-map
// references on every data dtype: odd sizes, size-one dims, symbolic dims, and the errors.
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

std::string dtype_label(DType d) { return std::string(" (") + dtype_name(d) + ")"; }

// ---- reshape ------------------------------------------------------------------------

TEST(ShapeOps, ReshapeKeepsElementOrder) {
  for (DType dtype : kMoveDTypes) {
    TensorData x = random_data(dtype, {2, 3, 5});
    Graph g;
    Tensor px = g.placeholder("x", {2, 3, 5}, dtype);
    Tensor a = reshape(px, {5, -1});
    Tensor b = reshape(px, {30});
    Tensor c = reshape(px, {1, 3, 1, 10});
    EXPECT_EQ(a.shape(), (Shape{5, 6}));
    auto out = testing::run_once(g, {a, b, c}, {{"x", x}});
    auto same = pick_elements(x, 30, [](int64_t i) { return i; });
    expect_same_elements(out[0], {5, 6}, same, "reshape [5, -1]" + dtype_label(dtype));
    expect_same_elements(out[1], {30}, same, "reshape [30]" + dtype_label(dtype));
    expect_same_elements(out[2], {1, 3, 1, 10}, same, "reshape [1, 3, 1, 10]" + dtype_label(dtype));
  }
}

// A reshape aliases its input, so the op after it must read the original bytes.
TEST(ShapeOps, ReshapeFeedsAKernel) {
  TensorData x = random_data(DType::f32, {4, 6});
  Graph g;
  Tensor px = g.placeholder("x", {4, 6});
  Tensor y = transpose(reshape(px, {2, 12}));
  auto out = testing::run_once(g, {y}, {{"x", x}}).at(0);
  auto want = pick_elements(x, 24, [](int64_t i) { return (i % 2) * 12 + i / 2; });
  expect_same_elements(out, {12, 2}, want, "transpose(reshape)");
}

TEST(ShapeOps, ReshapeWithSymbols) {
  Graph g;
  Tensor px = g.placeholder("x", {"seq", 12});
  Tensor named = reshape(px, {"seq", 3, 4});
  Tensor cancelled = reshape(px, {-1, 3, 4});
  Tensor halves = reshape(px, {2, -1});
  EXPECT_EQ(named.shape(), (Shape{"seq", 3, 4}));
  EXPECT_EQ(cancelled.shape(), (Shape{"seq", 3, 4}));
  EXPECT_EQ(halves.shape()[0], Dim(2));
  EXPECT_FALSE(halves.shape()[1].is_static());

  CompileOptions options;
  options.outputs = {named, cancelled, halves};
  Executable exe = compile(g, options);
  for (int64_t seq : {5, 1, 8}) {
    TensorData x = random_data(DType::f32, {seq, 12});
    auto out = exe.run({{"x", x}});
    auto same = pick_elements(x, seq * 12, [](int64_t i) { return i; });
    std::string what = "seq=" + std::to_string(seq);
    expect_same_elements(out[0], {seq, 3, 4}, same, "named " + what);
    expect_same_elements(out[1], {seq, 3, 4}, same, "cancelled " + what);
    expect_same_elements(out[2], {2, seq * 6}, same, "halves " + what);
  }
}

TEST(ShapeOps, ReshapeErrors) {
  Graph g;
  Tensor x = g.placeholder("x", {2, 3});
  expect_error([&] { reshape(x, {4, 2}); }, ErrorKind::shape, {"reshape", "[2, 3]", "[4, 2]"});
  expect_error([&] { reshape(x, {-1, 4}); }, ErrorKind::shape, {"reshape", "[2, 3]", "[-1, 4]"});
  expect_error([&] { reshape(x, {-1, -1}); }, ErrorKind::shape, {"reshape", "-1"});
  expect_error([&] { reshape(x, {-2, -3}); }, ErrorKind::shape, {"reshape", "negative"});
  // The same symbols on both sides leave the static factors to compare.
  Tensor s = g.placeholder("s", {"seq", 4});
  expect_error([&] { reshape(s, {"seq", 3}); }, ErrorKind::shape, {"reshape", "[seq, 4]"});
}

// With symbols the sizes can only be compared once the feed binds them.
TEST(ShapeOps, ReshapeSizeMismatchAtRunTime) {
  Graph g;
  Tensor x = g.placeholder("x", {"seq", 4});
  Tensor y = reshape(x, {5, -1});
  CompileOptions options;
  options.outputs = {y};
  Executable exe = compile(g, options);
  auto ok = exe.run({{"x", random_data(DType::f32, {5, 4})}});
  EXPECT_EQ(ok.at(0).shape(), (Extents{5, 4}));
  expect_error(
      [&] {
        exe.run({{"x", random_data(DType::f32, {3, 4})}});
      },
      ErrorKind::shape, {"reshape", "[3, 4]"});
}

// ---- transpose ----------------------------------------------------------------------

// out[i_0..] = x[j] with j[perm[d]] = i_d.
std::vector<uint8_t> transpose_reference(const TensorData& x, const std::vector<int64_t>& perm,
                                         Extents* out_shape) {
  const Extents& in = x.shape();
  int rank = int(in.size());
  out_shape->assign(size_t(rank), 0);
  std::vector<int> axis(static_cast<size_t>(rank));
  for (int d = 0; d < rank; ++d) {
    axis[size_t(d)] = int(perm[size_t(d)] < 0 ? perm[size_t(d)] + rank : perm[size_t(d)]);
    (*out_shape)[size_t(d)] = in[size_t(axis[size_t(d)])];
  }
  Extents shape = *out_shape;
  return pick_elements(x, numel(shape), [&](int64_t i) {
    auto o = unravel(i, shape);
    std::vector<int64_t> j(static_cast<size_t>(rank));
    for (int d = 0; d < rank; ++d) j[size_t(axis[size_t(d)])] = o[size_t(d)];
    return ravel(j, in);
  });
}

TEST(ShapeOps, TransposeFourDimPerms) {
  // The last shape is large enough for the tiled copy (with planes around the tile).
  const std::vector<Extents> shapes = {{2, 3, 4, 5}, {3, 1, 7, 2}, {5, 4, 1, 3}, {3, 40, 5, 33}};
  const std::vector<std::vector<int64_t>> perms = {{0, 2, 1, 3}, {3, 1, 0, 2},   {2, 3, 0, 1},
                                                   {0, 1, 3, 2}, {-1, 0, 1, -2}, {1, 0, 2, 3}};
  for (DType dtype : kMoveDTypes)
    for (const auto& shape : shapes)
      for (const auto& perm : perms) {
        TensorData x = random_data(dtype, shape);
        Graph g;
        Tensor y = transpose(g.placeholder("x", to_shape(shape), dtype), perm);
        Extents want_shape;
        auto want = transpose_reference(x, perm, &want_shape);
        EXPECT_EQ(y.shape(), to_shape(want_shape));
        auto out = testing::run_once(g, {y}, {{"x", x}}).at(0);
        expect_same_elements(out, want_shape, want,
                             "transpose " + to_string(shape) + " by " +
                                 to_string(Extents(perm.begin(), perm.end())) + dtype_label(dtype));
      }
}

TEST(ShapeOps, TransposeLastTwoAndPermute) {
  for (DType dtype : {DType::f32, DType::bf16, DType::i64}) {
    // The large case crosses the threshold where the copy goes parallel.
    for (const Extents& shape : {Extents{7, 13}, Extents{3, 5, 2}, Extents{300, 257}}) {
      TensorData x = random_data(dtype, shape);
      Graph g;
      Tensor px = g.placeholder("x", to_shape(shape), dtype);
      int rank = int(shape.size());
      std::vector<int64_t> perm;
      for (int d = 0; d < rank; ++d) perm.push_back(d);
      std::swap(perm[size_t(rank - 2)], perm[size_t(rank - 1)]);
      Extents want_shape;
      auto want = transpose_reference(x, perm, &want_shape);
      auto out = testing::run_once(g, {transpose(px), permute(px, perm)}, {{"x", x}});
      expect_same_elements(out[0], want_shape, want, "transpose " + to_string(shape));
      expect_same_elements(out[1], want_shape, want, "permute " + to_string(shape));
    }
  }
}

TEST(ShapeOps, TransposeWithSymbol) {
  Graph g;
  Tensor y = transpose(g.placeholder("x", {2, "seq", 3}, DType::f16), {1, 2, 0});
  EXPECT_EQ(y.shape(), (Shape{"seq", 3, 2}));
  TensorData data = random_data(DType::f16, {2, 4, 3});
  Extents want_shape;
  auto want = transpose_reference(data, {1, 2, 0}, &want_shape);
  auto out = testing::run_once(g, {y}, {{"x", data}}).at(0);
  expect_same_elements(out, want_shape, want, "symbolic transpose");
}

TEST(ShapeOps, TransposeErrors) {
  Graph g;
  Tensor x = g.placeholder("x", {2, 3, 4});
  expect_error([&] { transpose(x, {0, 1}); }, ErrorKind::shape, {"transpose", "[2, 3, 4]"});
  expect_error([&] { transpose(x, {0, 1, 1}); }, ErrorKind::shape, {"transpose", "[0, 1, 1]"});
  expect_error([&] { transpose(x, {0, 1, 3}); }, ErrorKind::shape, {"transpose", "[0, 1, 3]"});
  expect_error([&] { transpose(x, {0, 1, -4}); }, ErrorKind::shape, {"transpose"});
  Tensor v = g.placeholder("v", {5});
  expect_error([&] { transpose(v); }, ErrorKind::shape, {"transpose", "[5]"});
}

// ---- broadcast_to -------------------------------------------------------------------

std::vector<uint8_t> broadcast_reference(const TensorData& x, const Extents& shape) {
  return pick_elements(x, numel(shape), [&](int64_t i) {
    return testing::broadcast_index(unravel(i, shape), x.shape());
  });
}

TEST(ShapeOps, BroadcastTo) {
  struct Case {
    Extents from, to;
  };
  const std::vector<Case> cases = {
      {{3, 1}, {2, 3, 5}},    {{1}, {4}}, {{1, 4}, {3, 4}},  {{}, {2, 2}},
      {{2, 1, 3}, {2, 5, 3}}, {{3}, {3}}, {{1, 7}, {300, 7}}};
  for (DType dtype : kMoveDTypes)
    for (const auto& c : cases) {
      TensorData x = random_data(dtype, c.from);
      Graph g;
      Tensor y = broadcast_to(g.placeholder("x", to_shape(c.from), dtype), to_shape(c.to));
      EXPECT_EQ(y.shape(), to_shape(c.to));
      auto out = testing::run_once(g, {y}, {{"x", x}}).at(0);
      expect_same_elements(
          out, c.to, broadcast_reference(x, c.to),
          "broadcast " + to_string(c.from) + " to " + to_string(c.to) + dtype_label(dtype));
    }
}

TEST(ShapeOps, BroadcastToSymbol) {
  Graph g;
  Tensor x = g.placeholder("x", {"seq", 1}, DType::i32);
  Tensor y = broadcast_to(x, {2, "seq", 6});
  EXPECT_EQ(y.shape(), (Shape{2, "seq", 6}));
  TensorData data = random_data(DType::i32, {3, 1});
  auto out = testing::run_once(g, {y}, {{"x", data}}).at(0);
  expect_same_elements(out, {2, 3, 6}, broadcast_reference(data, {2, 3, 6}), "symbolic broadcast");
}

TEST(ShapeOps, BroadcastToErrors) {
  Graph g;
  Tensor x = g.placeholder("x", {3});
  expect_error([&] { broadcast_to(x, {4}); }, ErrorKind::shape, {"broadcast_to", "[3]", "[4]"});
  Tensor m = g.placeholder("m", {2, 3});
  expect_error([&] { broadcast_to(m, {3}); }, ErrorKind::shape, {"broadcast_to", "[2, 3]"});
  expect_error([&] { broadcast_to(m, {2, -1}); }, ErrorKind::shape, {"broadcast_to"});
}

// ---- concat -------------------------------------------------------------------------

// Element i of the result comes from the input whose range on `axis` holds its index.
std::vector<uint8_t> concat_reference(const std::vector<TensorData>& xs, int axis,
                                      Extents* out_shape) {
  *out_shape = xs[0].shape();
  (*out_shape)[size_t(axis)] = 0;
  for (const auto& x : xs) (*out_shape)[size_t(axis)] += x.shape()[size_t(axis)];
  Extents shape = *out_shape;
  size_t es = testing::element_size(xs[0].dtype());
  std::vector<uint8_t> out(size_t(numel(shape)) * es);
  std::vector<std::vector<uint8_t>> in;
  for (const auto& x : xs) in.push_back(testing::bytes_of(x));
  for (int64_t i = 0; i < numel(shape); ++i) {
    auto idx = unravel(i, shape);
    size_t k = 0;
    while (idx[size_t(axis)] >= xs[k].shape()[size_t(axis)])
      idx[size_t(axis)] -= xs[k++].shape()[size_t(axis)];
    int64_t j = ravel(idx, xs[k].shape());
    std::memcpy(&out[size_t(i) * es], &in[k][size_t(j) * es], es);
  }
  return out;
}

TEST(ShapeOps, ConcatThreeOnMiddleAxis) {
  for (DType dtype : kMoveDTypes) {
    std::vector<TensorData> xs = {random_data(dtype, {2, 3, 5}), random_data(dtype, {2, 1, 5}),
                                  random_data(dtype, {2, 4, 5})};
    Graph g;
    std::vector<Tensor> ps;
    Feeds feeds;
    for (size_t k = 0; k < xs.size(); ++k) {
      std::string name = "x" + std::to_string(k);
      ps.push_back(g.placeholder(name, to_shape(xs[k].shape()), dtype));
      feeds[name] = xs[k];
    }
    Tensor y = concat(ps, 1);
    Tensor y_negative = concat(ps, -2);
    EXPECT_EQ(y.shape(), (Shape{2, 8, 5}));
    Extents want_shape;
    auto want = concat_reference(xs, 1, &want_shape);
    auto out = testing::run_once(g, {y, y_negative}, feeds);
    expect_same_elements(out[0], want_shape, want, "concat axis 1" + dtype_label(dtype));
    expect_same_elements(out[1], want_shape, want, "concat axis -2" + dtype_label(dtype));
  }
}

TEST(ShapeOps, ConcatFirstAndLastAxis) {
  for (int axis : {0, 2}) {
    Extents a{3, 2, 7}, b{3, 2, 7};
    b[size_t(axis)] = 5;
    std::vector<TensorData> xs = {random_data(DType::bf16, a), random_data(DType::bf16, b)};
    Graph g;
    Tensor y = concat({g.placeholder("a", to_shape(a), DType::bf16),
                       g.placeholder("b", to_shape(b), DType::bf16)},
                      axis);
    Extents want_shape;
    auto want = concat_reference(xs, axis, &want_shape);
    auto out = testing::run_once(g, {y}, {{"a", xs[0]}, {"b", xs[1]}}).at(0);
    expect_same_elements(out, want_shape, want, "concat axis " + std::to_string(axis));
  }
}

TEST(ShapeOps, ConcatWithSymbol) {
  Graph g;
  Tensor past = g.placeholder("past", {2, "seq", 3});
  TensorData step_data = random_data(DType::f32, {2, 1, 3});
  Tensor y = concat({past, g.constant(step_data)}, 1);
  EXPECT_EQ(y.shape()[0], Dim(2));
  EXPECT_EQ(y.shape()[2], Dim(3));
  EXPECT_FALSE(y.shape()[1].is_static());
  TensorData past_data = random_data(DType::f32, {2, 4, 3});
  Extents want_shape;
  auto want = concat_reference({past_data, step_data}, 1, &want_shape);
  auto out = testing::run_once(g, {y}, {{"past", past_data}}).at(0);
  expect_same_elements(out, want_shape, want, "symbolic concat");
}

TEST(ShapeOps, ConcatErrors) {
  Graph g;
  Tensor a = g.placeholder("a", {2, 3});
  Tensor b = g.placeholder("b", {2, 3, 1});
  Tensor c = g.placeholder("c", {3, 3});
  Tensor d = g.placeholder("d", {2, 3}, DType::f16);
  expect_error(
      [&] {
        concat({a, b}, 0);
      },
      ErrorKind::shape, {"concat", "[2, 3]", "[2, 3, 1]", "rank"});
  expect_error([&] { concat({a, c}, 1); }, ErrorKind::shape, {"concat", "[2, 3]", "[3, 3]"});
  expect_error([&] { concat({a, d}, 0); }, ErrorKind::dtype, {"concat", "f16"});
  expect_error([&] { concat({a, a}, 2); }, ErrorKind::shape, {"concat", "axis 2"});
  expect_error([&] { concat({a, a}, -3); }, ErrorKind::shape, {"concat", "axis -3"});
}

// ---- split --------------------------------------------------------------------------

TEST(ShapeOps, SplitBySizes) {
  for (DType dtype : kMoveDTypes) {
    TensorData x = random_data(dtype, {2, 6, 3});
    Graph g;
    auto parts = split(g.placeholder("x", {2, 6, 3}, dtype), {1, 3, 2}, 1);
    ASSERT_EQ(parts.size(), 3u);
    EXPECT_EQ(parts[1].shape(), (Shape{2, 3, 3}));
    auto out = testing::run_once(g, parts, {{"x", x}});
    int64_t first = 0;
    for (size_t k = 0; k < 3; ++k) {
      Extents shape = out[k].shape();
      auto want = pick_elements(x, numel(shape), [&](int64_t i) {
        auto idx = unravel(i, shape);
        idx[1] += first;
        return ravel(idx, x.shape());
      });
      expect_same_elements(out[k], Extents{2, std::vector<int64_t>{1, 3, 2}[k], 3}, want,
                           "split part " + std::to_string(k) + dtype_label(dtype));
      first += shape[1];
    }
  }
}

TEST(ShapeOps, SplitIntoEqualParts) {
  TensorData x = random_data(DType::f16, {2, 4, 9});
  Graph g;
  auto parts = split(g.placeholder("x", {2, 4, 9}, DType::f16), 3, -1);
  ASSERT_EQ(parts.size(), 3u);
  auto out = testing::run_once(g, parts, {{"x", x}});
  for (int64_t k = 0; k < 3; ++k) {
    auto want = pick_elements(x, 24, [&](int64_t i) {
      auto idx = unravel(i, {2, 4, 3});
      idx[2] += 3 * k;
      return ravel(idx, x.shape());
    });
    expect_same_elements(out[size_t(k)], {2, 4, 3}, want, "part " + std::to_string(k));
  }
}

TEST(ShapeOps, SplitSymbolicDim) {
  Graph g;
  auto parts = split(g.placeholder("x", {"seq", 4}, DType::i64), 2, 0);
  ASSERT_EQ(parts.size(), 2u);
  CompileOptions options;
  options.outputs = parts;
  Executable exe = compile(g, options);
  TensorData x = random_data(DType::i64, {6, 4});
  auto out = exe.run({{"x", x}});
  expect_same_elements(out[0], {3, 4}, pick_elements(x, 12, [](int64_t i) { return i; }), "top");
  expect_same_elements(out[1], {3, 4}, pick_elements(x, 12, [](int64_t i) { return i + 12; }),
                       "bottom");
  expect_error(
      [&] {
        exe.run({{"x", random_data(DType::i64, {5, 4})}});
      },
      ErrorKind::shape, {"split", "2"});
}

TEST(ShapeOps, SplitErrors) {
  Graph g;
  Tensor x = g.placeholder("x", {2, 5});
  expect_error([&] { split(x, 2, 1); }, ErrorKind::shape, {"split", "[2, 5]", "2 equal parts"});
  expect_error([&] { split(x, {2, 2}, 1); }, ErrorKind::shape, {"split", "[2, 2]", "5"});
  expect_error([&] { split(x, {1, 1}, 2); }, ErrorKind::shape, {"split", "axis 2"});
  expect_error([&] { split(x, 0, 1); }, ErrorKind::value, {"split", "parts"});
  expect_error([&] { split(x, {6, -1}, 1); }, ErrorKind::value, {"split", "negative"});
}

}  // namespace
}  // namespace loom
