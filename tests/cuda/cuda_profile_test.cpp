// Executable::profile on a GPU: each step timed by a CUDA event pair on the executable's
// stream (see tests/package/profile_check.h for what is checked).
#include "cuda/cuda_test_util.h"
#include "package/profile_check.h"

namespace loom {
namespace {

TEST(CudaProfile, EventTimesPerStepAndThePlainRunsOutputs) {
  LOOM_REQUIRE_CUDA();
  testing::check_profile(testing::gpu());
}

}  // namespace
}  // namespace loom
