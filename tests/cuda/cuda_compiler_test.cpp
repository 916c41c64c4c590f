// On the GPU: cuBLASLt's algorithms are tactics chosen by timing (shown in the dump, cached so
// a second compile times nothing); threads sharing an executable get the serial results.
#include <thread>

#include "cuda_test_util.h"

namespace loom {

// These tests read CUDA-only behaviour (cuBLASLt tactics, graph replay): a real GPU only.
#define LOOM_REQUIRE_REAL_CUDA()                                  \
  do {                                                            \
    if (!::loom::cuda_available()) GTEST_SKIP() << "no CUDA GPU"; \
  } while (0)

TEST(CudaCompiler, CublasAlgorithmsAreTimedTacticsShownInTheDump) {
  LOOM_REQUIRE_REAL_CUDA();
  clear_tactic_cache();
  Graph g;
  Tensor a = g.placeholder("a", {64, 256}, DType::f16);
  Tensor b = g.placeholder("b", {256, 128}, DType::f16);
  CompileOptions options;
  options.device = Device::cuda();
  options.outputs = {matmul(a, b)};
  size_t before = tactic_timings();
  Executable exe = compile(g, options);  // static: planned, and the algorithms timed, here
  size_t timed = tactic_timings() - before;
  std::string dump = exe.dump();
  EXPECT_NE(dump.find("cuda.matmul.cublaslt#algo"), std::string::npos) << dump;
  if (timed > 1) {
    EXPECT_NE(dump.find(" tried)"), std::string::npos) << dump;
  }
  Feeds feeds{{"a", testing::random_tensor(DType::f16, {64, 256})},
              {"b", testing::random_tensor(DType::f16, {256, 128})}};
  auto want = testing::run_on(g, {matmul(a, b)}, feeds, Device::cpu(), {});
  for (int r = 0; r < 4; ++r) {  // eager, captured, replayed
    auto got = exe.run(feeds);
    testing::expect_close(got[0], testing::to_doubles(want[0]), testing::tolerance_for(DType::f16));
  }
  EXPECT_TRUE(exe.last_run_stats().replayed_graph);
  before = tactic_timings();
  Executable again = compile(g, options);
  EXPECT_EQ(tactic_timings(), before);  // the in-process cache answers
}

TEST(CudaCompiler, ThreadsSharingAnExecutableMatchSerialRuns) {
  LOOM_REQUIRE_REAL_CUDA();
  Graph g;
  Tensor x = g.placeholder("x", {"n", 64});
  Tensor w = g.placeholder("w", {64, 32});
  CompileOptions options;
  options.device = Device::cuda();
  options.outputs = {softmax(matmul(x, w), -1)};
  options.max_cached_plans = 2;
  Executable exe = compile(g, options);
  constexpr int kThreads = 4, kRuns = 30;
  TensorData weights = testing::random_tensor(DType::f32, {64, 32});
  std::vector<TensorData> inputs;
  std::vector<std::vector<float>> want;
  for (int t = 0; t < kThreads; ++t) {
    inputs.push_back(testing::random_tensor(DType::f32, {int64_t(3 + 5 * t), 64}));
    want.push_back(exe.run({{"x", inputs.back()}, {"w", weights}})[0].to_vector<float>());
  }
  std::vector<int> mismatches(kThreads, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      for (int r = 0; r < kRuns; ++r)
        if (exe.run({{"x", inputs[size_t(t)]}, {"w", weights}})[0].to_vector<float>() !=
            want[size_t(t)])
          ++mismatches[size_t(t)];
    });
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(mismatches[size_t(t)], 0) << "thread " << t;
}

}  // namespace loom
