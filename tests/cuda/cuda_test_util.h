// Helpers for the GPU tests: skip without a GPU, and run one graph on the CPU and on CUDA
// with the same inputs and compare.
//
// LOOM_CUDA_TESTS_ON_CPU=1 runs the "GPU" side on the CPU instead, which checks the tests
// themselves on a machine without a GPU; it is ignored where a GPU is present, so that it
// can never turn a GPU run into a CPU-vs-CPU one. LOOM_REQUIRE_GPU=1 (scripts/gpu_test.sh)
// makes a missing GPU a failure instead of a skip, and also turns LOOM_CUDA_TESTS_ON_CPU off.
#pragma once

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "test_util.h"

namespace loom::testing {

inline bool env_flag(const char* name) {
  const char* v = std::getenv(name);
  return v && v[0] == '1';
}

inline bool gpu_required() { return env_flag("LOOM_REQUIRE_GPU"); }

inline bool cuda_tests_on_cpu() {
  return env_flag("LOOM_CUDA_TESTS_ON_CPU") && !gpu_required() && !::loom::cuda_available();
}

inline Device gpu() { return cuda_tests_on_cpu() ? Device::cpu() : Device::cuda(); }

#define LOOM_REQUIRE_CUDA()                                                     \
  do {                                                                          \
    if (!::loom::cuda_available() && !::loom::testing::cuda_tests_on_cpu()) {   \
      if (::loom::testing::gpu_required())                                      \
        FAIL() << "LOOM_REQUIRE_GPU=1 but Loom sees no CUDA GPU (or was built " \
                  "without CUDA)";                                              \
      GTEST_SKIP() << "no CUDA GPU";                                            \
    }                                                                           \
  } while (0)

// Float and c64 outputs within `tolerance` (default: tolerance_for(dtype)) of the CPU's; every
// other dtype bit-exact whatever the tolerance.
inline Tolerance default_tolerance(DType dtype) { return tolerance_for(dtype); }

inline std::vector<TensorData> to_host(std::vector<TensorData> results) {
  for (auto& r : results) r = r.to_host();
  return results;
}

inline std::vector<TensorData> run_on(const Graph& g, const std::vector<Tensor>& outputs,
                                      const Feeds& feeds, Device device,
                                      const std::set<std::string>& disabled_passes) {
  CompileOptions options;
  options.device = device;
  options.outputs = outputs;
  options.disabled_passes = disabled_passes;
  Executable exe = compile(g, options);
  return to_host(exe.run(feeds));
}

// The same values in a fresh random order (so in the range the test chose for them, and
// index feeds stay indices): a new feed for a repeated run. Packed dtypes stay as they are.
inline TensorData shuffled(const TensorData& t) {
  TensorData host = t.to_host().contiguous().clone();
  if (is_packed(host.dtype()) || host.numel() < 2) return host;
  const size_t size = size_t(dtype_info(host.dtype()).bits / 8);
  std::vector<size_t> order(size_t(host.numel()));
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::shuffle(order.begin(), order.end(), rng());
  std::vector<unsigned char> bytes(host.nbytes());
  const auto* src = static_cast<const unsigned char*>(host.data());
  for (size_t i = 0; i < order.size(); ++i)
    std::memcpy(bytes.data() + i * size, src + order[i] * size, size);
  std::memcpy(host.data(), bytes.data(), bytes.size());
  return host;
}

inline Feeds shuffled(const Feeds& feeds) {
  Feeds out;
  for (const auto& [name, value] : feeds) out[name] = shuffled(value);
  return out;
}

// Integers, bool and packed dtypes: bit-exact (i64 beyond 2^24 would not survive floats).
inline void expect_same_bytes(const TensorData& got, const TensorData& want,
                              const std::string& what) {
  TensorData a = got.to_host().contiguous(), b = want.to_host().contiguous();
  ASSERT_EQ(a.nbytes(), b.nbytes()) << what;
  const auto* pa = static_cast<const unsigned char*>(a.data());
  const auto* pb = static_cast<const unsigned char*>(b.data());
  if (std::memcmp(pa, pb, a.nbytes()) == 0) return;
  size_t first = 0;
  while (pa[first] == pb[first]) ++first;
  std::vector<float> fa = a.to_floats(), fb = b.to_floats();
  size_t element = first * 8 / size_t(dtype_info(a.dtype()).bits);
  ADD_FAILURE() << what << ": differs from byte " << first << " (element " << element << ": got "
                << fa[element] << ", want " << fb[element] << ")";
}

// Compiles `g` once for the CPU and once for the GPU and runs each kRuns times, the first
// with `feeds` and the others with shuffled copies of them, comparing every run's outputs.
// With CUDA graphs on, the second run captures a graph and the third only replays it: the
// third run must report replayed_graph, so every op is checked under replay with inputs that
// differ from those it was captured with.
inline constexpr int kRuns = 3;

inline void expect_gpu_matches_cpu(const Graph& g, const std::vector<Tensor>& outputs,
                                   const Feeds& feeds, const std::string& what,
                                   std::optional<Tolerance> tolerance = std::nullopt,
                                   const std::set<std::string>& disabled_passes = {}) {
  CompileOptions options;
  options.outputs = outputs;
  options.disabled_passes = disabled_passes;
  Executable cpu_exe = compile(g, options);
  options.device = gpu();
  Executable gpu_exe = compile(g, options);
  Feeds run_feeds = feeds;
  for (int run = 0; run < kRuns; ++run) {
    if (run > 0) run_feeds = shuffled(feeds);
    std::vector<TensorData> want = to_host(cpu_exe.run(run_feeds));
    std::vector<TensorData> got = to_host(gpu_exe.run(run_feeds));
    const std::string label = what + " (run " + std::to_string(run + 1) + ")";
    if (run == kRuns - 1 && gpu_exe.device().kind == DeviceKind::cuda && options.cuda_graphs) {
      EXPECT_TRUE(gpu_exe.last_run_stats().replayed_graph) << label << ": no CUDA graph replay";
    }
    ASSERT_EQ(got.size(), want.size()) << label;
    for (size_t i = 0; i < got.size(); ++i) {
      std::string out_label = label + " output " + std::to_string(i);
      ASSERT_EQ(got[i].dtype(), want[i].dtype()) << out_label;
      ASSERT_EQ(got[i].shape(), want[i].shape()) << out_label;
      // c64 compares as interleaved (re, im) floats.
      if (is_float(want[i].dtype()) || want[i].dtype() == DType::c64)
        expect_close(got[i], to_doubles(want[i]),
                     tolerance.value_or(default_tolerance(want[i].dtype())), out_label);
      else
        expect_same_bytes(got[i], want[i], out_label);
    }
  }
}

inline const std::vector<DType> kFloatDTypes = {DType::f32, DType::f16, DType::bf16};

}  // namespace loom::testing
