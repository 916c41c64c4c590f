// On the CPU, an output that a step makes in an arena value of its own is written straight
// into the caller's buffer (Executable::run(feeds, outputs)): the buffer is reused, later
// steps and other outputs that read the value read it there, and every other output is
// still copied out.
#include "test_util.h"

namespace loom {

TEST(OutputInPlace, ReusedBufferIsWrittenByTheStep) {
  Graph g;
  Tensor x = g.placeholder("x", {"n"});
  Tensor y = x * 2.0;
  Tensor z = y + 1.0;  // reads output 0 after its step wrote it
  CompileOptions options;
  options.outputs = {y, z, y, reshape(y, {1, "n"}), x};
  Executable exe = compile(g, options);
  std::vector<TensorData> outputs;
  for (int64_t n : {5, 1000, 5}) {
    TensorData xv = testing::random_tensor(DType::f32, {n});
    for (int round = 0; round < 2; ++round) {
      const void* before = outputs.empty() ? nullptr : outputs[0].data();
      const bool same_shape = !outputs.empty() && outputs[0].shape() == Extents{n};
      exe.run({{"x", xv}}, outputs);
      if (same_shape) {
        EXPECT_EQ(outputs[0].data(), before) << "n " << n;
      }
      ASSERT_EQ(outputs.size(), 5u);
      auto xs = xv.to_vector<float>();
      auto o0 = outputs[0].to_vector<float>(), o1 = outputs[1].to_vector<float>();
      auto o2 = outputs[2].to_vector<float>(), o3 = outputs[3].to_vector<float>();
      auto o4 = outputs[4].to_vector<float>();
      EXPECT_NE(outputs[0].data(), outputs[2].data());  // the same value, two buffers
      for (size_t i = 0; i < xs.size(); ++i) {
        EXPECT_EQ(o0[i], xs[i] * 2) << i;
        EXPECT_EQ(o1[i], xs[i] * 2 + 1) << i;
        EXPECT_EQ(o2[i], xs[i] * 2) << i;
        EXPECT_EQ(o3[i], xs[i] * 2) << i;
        EXPECT_EQ(o4[i], xs[i]) << i;
      }
    }
  }
  // A plain run (no buffers handed in) and a profile still give the values.
  TensorData xv = TensorData::from_vector<float>({1, 2, 3}, {3});
  EXPECT_EQ(exe.run({{"x", xv}})[1].to_vector<float>(), (std::vector<float>{3, 5, 7}));
  exe.profile({{"x", xv}});
  EXPECT_EQ(exe.run({{"x", xv}})[0].to_vector<float>(), (std::vector<float>{2, 4, 6}));
}

TEST(OutputInPlace, MismatchedOrFeedBuffersAreReplaced) {
  Graph g;
  Tensor x = g.placeholder("x", {4});
  CompileOptions options;
  options.outputs = {x * 3.0};
  Executable exe = compile(g, options);
  TensorData xv = TensorData::from_vector<float>({1, 2, 3, 4}, {4});
  // The feed's own buffer, read in place: not written over, a new buffer comes back.
  std::vector<TensorData> outputs{xv};
  exe.run({{"x", xv}}, outputs);
  EXPECT_NE(outputs[0].data(), xv.data());
  EXPECT_EQ(outputs[0].to_vector<float>(), (std::vector<float>{3, 6, 9, 12}));
  EXPECT_EQ(xv.to_vector<float>(), (std::vector<float>{1, 2, 3, 4}));
  // A buffer of the wrong shape is replaced.
  outputs[0] = TensorData::zeros(DType::f32, {5});
  exe.run({{"x", xv}}, outputs);
  EXPECT_EQ(outputs[0].shape(), (Extents{4}));
  EXPECT_EQ(outputs[0].to_vector<float>(), (std::vector<float>{3, 6, 9, 12}));
}

TEST(OutputInPlace, AssignsReadTheOutputWhereItWasWritten) {
  Graph g;
  Tensor v = g.variable("counter", TensorData::from_vector<float>({0, 0}, {2}));
  Tensor inc = g.read(v) + 1.0;
  g.assign(v, inc);
  CompileOptions options;
  options.outputs = {inc};
  Executable exe = compile(g, options);
  std::vector<TensorData> outputs;
  for (int i = 1; i <= 3; ++i) {
    exe.run({}, outputs);
    EXPECT_EQ(outputs[0].to_vector<float>(), (std::vector<float>{float(i), float(i)}));
  }
  EXPECT_EQ(exe.variables().get("counter").to_vector<float>(), (std::vector<float>{3, 3}));
}

}  // namespace loom

namespace loom {

// Copies of 4 MB and more go through one memcpy per OpenMP thread (cpu_backend.cpp): a
// pass-through output and a copied output of a size that does not split evenly (chunk
// edges not at a multiple of the element count) come back bit for bit, as does a small one.
TEST(OutputInPlace, LargeCopiesAreExactAcrossThreadChunks) {
  for (int64_t n : {int64_t(1) << 20, (int64_t(1) << 21) + 37, int64_t(1000)}) {
    Graph g;
    Tensor x = g.placeholder("x", {n});
    CompileOptions options;
    options.outputs = {x, x * 1.0};
    Executable exe = compile(g, options);
    TensorData xv = testing::random_tensor(DType::f32, {n});
    std::vector<TensorData> outputs = exe.run({{"x", xv}});
    const std::vector<float> want = xv.to_vector<float>();
    for (const TensorData& out : outputs) {
      ASSERT_EQ(out.numel(), n);
      EXPECT_EQ(std::memcmp(out.data(), want.data(), want.size() * sizeof(float)), 0) << n;
    }
  }
}

}  // namespace loom
