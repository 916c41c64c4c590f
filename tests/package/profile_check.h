// The check shared by the CPU and CUDA profiling tests: Executable::profile times every step
// (each time positive, together at most the profiled run's wall time plus a little slack for
// the clocks) and computes what a plain run computes.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>

#include "test_util.h"

namespace loom::testing {

inline std::vector<uint8_t> bytes_of(const TensorData& t) {
  TensorData h = t.to_host().contiguous();
  const auto* p = static_cast<const uint8_t*>(h.data());
  return std::vector<uint8_t>(p, p + h.nbytes());
}

// A chain of matmuls, tanh and softmax big enough that each kernel takes measurable time.
inline void check_profile(Device device) {
  Graph g;
  constexpr int64_t n = 256;
  Tensor x = g.placeholder("x", {n, n}, DType::f32);
  Tensor y = x;
  Feeds feeds{{"x", random_tensor(DType::f32, {n, n})}};
  for (int i = 0; i < 4; ++i) {
    std::string w = "w" + std::to_string(i);
    y = softmax(tanh(matmul(y, g.placeholder(w, {n, n}, DType::f32))));
    feeds[w] = random_tensor(DType::f32, {n, n});
  }
  // The profile drops its outputs; an assign keeps what it computed, to compare.
  Tensor kept = g.variable("kept", TensorData::zeros(DType::f32, {n, n}));
  g.assign(kept, y);
  CompileOptions options;
  options.device = device;
  options.outputs = {y};
  Executable exe = compile(g, options);
  std::vector<uint8_t> plain = bytes_of(exe.run(feeds).at(0));  // the plan is made here
  ASSERT_EQ(bytes_of(exe.variables().get("kept")), plain);
  exe.variables().set("kept", TensorData::zeros(DType::f32, {n, n}));

  auto start = std::chrono::steady_clock::now();
  std::vector<NodeTime> times = exe.profile(feeds);
  double wall =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();

  ASSERT_GE(times.size(), 8u);  // four matmuls and four softmaxes at least
  double sum = 0;
  for (const NodeTime& t : times) {
    EXPECT_GT(t.ms, 0.0) << t.op << " %" << t.node << " " << t.kernel;
    EXPECT_FALSE(t.kernel.empty());
    sum += t.ms;
  }
  // Event and clock resolution: about half a microsecond per reading, and 0.1 ms for the
  // clock around the call.
  EXPECT_LE(sum, wall + 0.1 + times.size() * 0.001) << "sum " << sum << " ms, wall " << wall;

  // The same kernels and tactics as the plain run: bit-identical results.
  EXPECT_EQ(bytes_of(exe.variables().get("kept")), plain);
  // And a plain run after the profile still agrees (the profile left the plan as it was).
  EXPECT_EQ(bytes_of(exe.run(feeds).at(0)), plain);
}

}  // namespace loom::testing
