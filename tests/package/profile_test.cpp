// Executable::profile on the CPU (host clock); tests/cuda/cuda_profile_test.cpp runs the
// same check on a GPU (CUDA events).
#include "package/profile_check.h"

namespace loom {
namespace {

TEST(Profile, CpuTimesEveryStepAndComputesThePlainRunsOutputs) {
  testing::check_profile(Device::cpu());
}

}  // namespace
}  // namespace loom
