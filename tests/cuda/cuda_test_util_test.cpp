// The GPU tests' own switches (cuda_test_util.h): LOOM_CUDA_TESTS_ON_CPU must never turn a
// GPU run into a CPU-vs-CPU one, and LOOM_REQUIRE_GPU=1 turns it off altogether.
#include "cuda/cuda_test_util.h"

#include <cstdlib>

namespace loom {
namespace {

// Sets an environment variable for one scope and puts the old value back.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    ::setenv(name, value, 1);
  }
  ~ScopedEnv() {
    if (old_) {
      ::setenv(name_, old_->c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

TEST(CudaTestUtil, OnCpuSwitchIsIgnoredWhereAGpuIsPresent) {
  ScopedEnv on_cpu("LOOM_CUDA_TESTS_ON_CPU", "1");
  ScopedEnv required("LOOM_REQUIRE_GPU", "0");
  if (cuda_available()) {
    EXPECT_FALSE(testing::cuda_tests_on_cpu());
    EXPECT_EQ(testing::gpu(), Device::cuda());
  } else {
    EXPECT_TRUE(testing::cuda_tests_on_cpu());
    EXPECT_EQ(testing::gpu(), Device::cpu());
  }
}

TEST(CudaTestUtil, RequiringAGpuTurnsTheOnCpuSwitchOff) {
  ScopedEnv on_cpu("LOOM_CUDA_TESTS_ON_CPU", "1");
  ScopedEnv required("LOOM_REQUIRE_GPU", "1");
  EXPECT_TRUE(testing::gpu_required());
  EXPECT_FALSE(testing::cuda_tests_on_cpu());
  EXPECT_EQ(testing::gpu(), Device::cuda());
}

TEST(CudaTestUtil, ShuffledFeedKeepsItsValues) {
  TensorData x = TensorData::from_vector<int64_t>({1, 2, 3, 4, 5, 6, 7, int64_t(1) << 60}, {2, 4});
  TensorData y = testing::shuffled(x);
  EXPECT_EQ(y.shape(), x.shape());
  auto a = x.to_vector<int64_t>(), b = y.to_vector<int64_t>();
  EXPECT_NE(a, b);  // 8! orders: the seeded shuffle is not the identity
  std::sort(b.begin(), b.end());
  EXPECT_EQ(a, b);
}

}  // namespace
}  // namespace loom
