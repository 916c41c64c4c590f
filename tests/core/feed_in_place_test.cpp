// On the CPU, a contiguous aligned feed is read where it is, not copied into the arena;
// other feeds are copied; a caller's output buffer that is also a feed is never written over
// while the feed is still to be read.
#include "test_util.h"

namespace loom {

TEST(FeedInPlace, ContiguousCpuFeedsAreNotCopied) {
  Graph g;
  Tensor x = g.placeholder("x", {"n", 3});
  Tensor y = g.placeholder("y", {3});
  CompileOptions options;
  options.outputs = {x * 2.0 + y, x};
  Executable exe = compile(g, options);
  for (int64_t n : {2, 4, 2}) {
    TensorData xv = testing::random_tensor(DType::f32, {n, 3});
    TensorData yv = testing::random_tensor(DType::f32, {3});
    auto out = exe.run({{"x", xv}, {"y", yv}});
    EXPECT_EQ(exe.last_run_stats().feed_bytes_copied, 0u);
    auto xs = xv.to_vector<float>(), ys = yv.to_vector<float>();
    auto o0 = out[0].to_vector<float>(), o1 = out[1].to_vector<float>();
    for (size_t i = 0; i < xs.size(); ++i) {
      EXPECT_FLOAT_EQ(o0[i], xs[i] * 2 + ys[i % 3]);
      EXPECT_EQ(o1[i], xs[i]);
    }
  }
  // A strided feed is gathered and copied (12 floats); the other still read in place.
  TensorData wide = testing::random_tensor(DType::f32, {3, 4});
  TensorData strided = wide.view({4, 3}, {1, 4}, 0);  // the transpose, not contiguous
  TensorData yv = testing::random_tensor(DType::f32, {3});
  auto out = exe.run({{"x", strided}, {"y", yv}});
  EXPECT_EQ(exe.last_run_stats().feed_bytes_copied, 12 * sizeof(float));
  auto w = wide.to_vector<float>(), o1 = out[1].to_vector<float>();
  for (int64_t i = 0; i < 4; ++i)
    for (int64_t j = 0; j < 3; ++j) EXPECT_EQ(o1[size_t(i * 3 + j)], w[size_t(j * 4 + i)]);
}

TEST(FeedInPlace, OutputBufferThatIsAFeedIsNotOverwrittenEarly) {
  Graph g;
  Tensor x = g.placeholder("x", {4});
  CompileOptions options;
  options.outputs = {x * 2.0, x};
  Executable exe = compile(g, options);
  TensorData xv = TensorData::from_vector<float>({1, 2, 3, 4}, {4});
  std::vector<TensorData> outputs{xv, TensorData{}};  // output 0 would reuse x's buffer
  exe.run({{"x", xv}}, outputs);
  EXPECT_EQ(outputs[0].to_vector<float>(), (std::vector<float>{2, 4, 6, 8}));
  EXPECT_EQ(outputs[1].to_vector<float>(), (std::vector<float>{1, 2, 3, 4}));
  EXPECT_EQ(xv.to_vector<float>(), (std::vector<float>{1, 2, 3, 4}));
}

}  // namespace loom
