// Packages on a GPU: cuBLASLt's tactics are timed at compile and saved; loading on the same
// GPU times none, keeps the same plan (the dumps agree line for line) and computes the same
// bits as the executable that was saved.
#include <unistd.h>

#include <cstdio>

#include "cuda/cuda_test_util.h"
#include "loom/package.h"
#include "package/profile_check.h"

namespace loom {
namespace {

TEST(CudaPackage, RoundTripTimesNoTacticAndGivesTheSameBits) {
  if (!::loom::cuda_available()) {
    if (testing::gpu_required()) FAIL() << "LOOM_REQUIRE_GPU=1 but Loom sees no CUDA GPU";
    GTEST_SKIP() << "no CUDA GPU";
  }
  Graph g;
  Tensor a = g.placeholder("a", {64, 256}, DType::f16);
  Tensor w = g.variable("w", testing::random_tensor(DType::f16, {256, 128}));
  CompileOptions options;
  options.device = Device::cuda();
  options.outputs = {softmax(matmul(a, w))};
  clear_tactic_cache();
  size_t before = tactic_timings();
  Executable exe = compile(g, options);
  ASSERT_GT(tactic_timings(), before) << "cuBLASLt's candidates were not timed at compile";
  Feeds feeds{{"a", testing::random_tensor(DType::f16, {64, 256})}};
  std::vector<uint8_t> want = testing::bytes_of(exe.run(feeds).at(0));
  std::string path = ::testing::TempDir() + "loom_cuda_pkg_" + std::to_string(::getpid());
  save(exe, path);

  clear_tactic_cache();  // as in a new process: only the package knows the choice
  before = tactic_timings();
  Executable loaded = load(path, Device::cuda());
  std::remove(path.c_str());
  EXPECT_EQ(tactic_timings(), before);
  EXPECT_NE(loaded.package_note().find("from the package"), std::string::npos)
      << loaded.package_note();
  EXPECT_EQ(testing::bytes_of(loaded.run(feeds).at(0)), want);
  EXPECT_FALSE(loaded.last_run_stats().planned);
  EXPECT_EQ(tactic_timings(), before);
  EXPECT_EQ(loaded.dump(), exe.dump());
}

}  // namespace
}  // namespace loom
