// Helpers for the GPU tests: skip without a GPU, and run one graph on the CPU and on CUDA
// with the same inputs and compare. LOOM_CUDA_TESTS_ON_CPU=1 runs the "GPU" side on the
// CPU instead, which checks the tests themselves on a machine without a GPU.
#pragma once

#include <cstdlib>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "test_util.h"

namespace loom::testing {

inline bool cuda_tests_on_cpu() {
  const char* v = std::getenv("LOOM_CUDA_TESTS_ON_CPU");
  return v && v[0] == '1';
}

inline Device gpu() { return cuda_tests_on_cpu() ? Device::cpu() : Device::cuda(); }

#define LOOM_REQUIRE_CUDA()                                                 \
  do {                                                                      \
    if (!::loom::cuda_available() && !::loom::testing::cuda_tests_on_cpu()) \
      GTEST_SKIP() << "no CUDA GPU";                                        \
  } while (0)

// Float outputs within tolerance_for(dtype) of the CPU's; every other dtype bit-exact.
inline double default_tolerance(DType dtype) {
  return is_float(dtype) ? tolerance_for(dtype) : 0.0;
}

inline std::vector<TensorData> run_on(const Graph& g, const std::vector<Tensor>& outputs,
                                      const Feeds& feeds, Device device,
                                      const std::set<std::string>& disabled_passes) {
  CompileOptions options;
  options.device = device;
  options.outputs = outputs;
  options.disabled_passes = disabled_passes;
  Executable exe = compile(g, options);
  std::vector<TensorData> results = exe.run(feeds);
  for (auto& r : results) r = r.to_host();
  return results;
}

inline void expect_gpu_matches_cpu(const Graph& g, const std::vector<Tensor>& outputs,
                                   const Feeds& feeds, const std::string& what,
                                   std::optional<double> tolerance = std::nullopt,
                                   const std::set<std::string>& disabled_passes = {}) {
  std::vector<TensorData> want = run_on(g, outputs, feeds, Device::cpu(), disabled_passes);
  std::vector<TensorData> got = run_on(g, outputs, feeds, gpu(), disabled_passes);
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) {
    std::string label = what + " (output " + std::to_string(i) + ")";
    ASSERT_EQ(got[i].dtype(), want[i].dtype()) << label;
    ASSERT_EQ(got[i].shape(), want[i].shape()) << label;
    expect_close(got[i], to_doubles(want[i]),
                 tolerance.value_or(default_tolerance(want[i].dtype())), label);
  }
}

inline const std::vector<DType> kFloatDTypes = {DType::f32, DType::f16, DType::bf16};

}  // namespace loom::testing
