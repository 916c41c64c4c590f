// frames and overlap_add on the CPU against their definitions (exact copies and ordered
// sums), with constant and reflect padding, odd hops and batches; and their shape errors.
#include <string>
#include <vector>

#include "ops/byte_reference.h"

namespace loom {
namespace {

using testing::expect_close;
using testing::expect_error;
using testing::random_tensor;
using testing::to_doubles;

TEST(Frames, MatchTheDefinition) {
  struct Case {
    Extents shape;
    int64_t length, hop, pad;
    std::string mode;
  };
  const std::vector<Case> cases = {
      {{10}, 4, 2, 0, "constant"},      {{10}, 4, 3, 2, "constant"},
      {{2, 3, 17}, 5, 2, 2, "reflect"}, {{1000}, 400, 160, 200, "reflect"},
      {{4, 9}, 9, 1, 4, "reflect"},     {{3, 8}, 8, 5, 3, "constant"},
  };
  for (const Case& c : cases) {
    TensorData x = random_tensor(DType::f32, c.shape);
    Graph g;
    Tensor p = g.placeholder("x", to_shape(c.shape));
    TensorData w = random_tensor(DType::f32, {c.length});
    Tensor y = frames(p, c.length, c.hop, c.pad, c.mode);
    Tensor yw = windowed_frames(p, c.length, c.hop, c.pad, c.mode, g.placeholder("w", {c.length}));
    std::vector<TensorData> outs = testing::run_once(g, {y, yw}, {{"x", x}, {"w", w}});
    const TensorData& got = outs.at(0);
    const int64_t t = c.shape.back(), rows = numel(c.shape) / t;
    const int64_t count = 1 + (t + 2 * c.pad - c.length) / c.hop;
    ASSERT_EQ(got.shape().back(), c.length);
    ASSERT_EQ(got.shape()[got.shape().size() - 2], count);
    std::vector<double> v = to_doubles(x), want;
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t f = 0; f < count; ++f)
        for (int64_t k = 0; k < c.length; ++k) {
          int64_t i = f * c.hop + k - c.pad;  // numpy.pad's reflect
          if (c.mode == "reflect") {
            if (i < 0) i = -i;
            if (i >= t) i = 2 * (t - 1) - i;
          }
          want.push_back(i < 0 || i >= t ? 0.0 : v[size_t(r * t + i)]);
        }
    expect_close(got, want, {0, 0},
                 "frames " + std::to_string(c.length) + "/" + std::to_string(c.hop));
    // With a window: one f32 product per sample, so within half an f32 ulp of the exact one.
    std::vector<double> wv = to_doubles(w);
    for (size_t i = 0; i < want.size(); ++i) want[i] *= wv[i % size_t(c.length)];
    expect_close(outs.at(1), want, {6e-8, 0},
                 "windowed frames " + std::to_string(c.length) + "/" + std::to_string(c.hop));
  }
}

TEST(Frames, OverlapAddMatchesTheDefinition) {
  for (auto [shape, hop] : std::vector<std::pair<Extents, int64_t>>{
           {{5, 4}, 2}, {{3, 7, 6}, 6}, {{2, 10, 8}, 3}, {{1, 5}, 1}, {{4, 3}, 5}}) {
    TensorData x = random_tensor(DType::f32, shape);
    Graph g;
    Tensor p = g.placeholder("x", to_shape(shape));
    TensorData got = testing::run_once(g, {overlap_add(p, hop)}, {{"x", x}}).at(0);
    const int64_t frames = shape[shape.size() - 2], length = shape.back();
    const int64_t t = (frames - 1) * hop + length, rows = numel(shape) / (frames * length);
    ASSERT_EQ(got.shape().back(), t);
    std::vector<double> v = to_doubles(x), want(size_t(rows * t), 0.0);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t f = 0; f < frames; ++f)
        for (int64_t k = 0; k < length; ++k)
          want[size_t(r * t + f * hop + k)] += v[size_t((r * frames + f) * length + k)];
    // At most ceil(length / hop) terms per sample.
    expect_close(got, want, testing::accumulation_tolerance(DType::f32, length / hop + 1),
                 "overlap_add");
  }
}

TEST(Frames, Errors) {
  Graph g;
  Tensor x = g.placeholder("x", {2, 10});
  expect_error([&] { frames(x, 11, 1); }, ErrorKind::shape, {"frames", "shorter than one frame"});
  expect_error([&] { frames(x, 4, 0); }, ErrorKind::value, {"frames", "hop"});
  expect_error([&] { frames(x, 4, 1, 10, "reflect"); }, ErrorKind::shape, {"frames", "reflect"});
  expect_error([&] { frames(x, 4, 1, 1, "wrap"); }, ErrorKind::value, {"frames", "pad_mode"});
  Tensor s = g.placeholder("s", {}, DType::f32);
  expect_error([&] { frames(s, 1, 1); }, ErrorKind::shape, {"frames", "rank"});
  expect_error([&] { overlap_add(x, 0); }, ErrorKind::value, {"overlap_add", "hop"});
  expect_error([&] { overlap_add(g.placeholder("v", {5}), 1); }, ErrorKind::shape,
               {"overlap_add", "rank"});
  expect_error([&] { windowed_frames(x, 4, 1, 0, "constant", g.placeholder("w3", {3})); },
               ErrorKind::shape, {"frames", "window"});
  expect_error(
      [&] {
        windowed_frames(g.placeholder("c", {10}, DType::c64), 4, 1, 0, "constant",
                        g.placeholder("w4", {4}));
      },
      ErrorKind::dtype, {"frames", "window"});
  Tensor i = g.placeholder("i", {4}, DType::i32);
  expect_error([&] { frames(i, 2, 1); }, ErrorKind::dtype, {"frames", "i32"});
}

}  // namespace
}  // namespace loom
