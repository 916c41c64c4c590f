// The plan cache is bounded by count and bytes, and keeps the bindings a workload keeps
// coming back to even when it cycles through more cold bindings than the cache holds.
#include "test_util.h"

namespace loom {

namespace {

Executable symbolic_executable(size_t max_plans, size_t max_bytes) {
  Graph g;
  Tensor x = g.placeholder("x", {"n"});
  CompileOptions options;
  options.outputs = {exp(x) * 3.0};
  options.max_cached_plans = max_plans;
  options.plan_cache_bytes = max_bytes;
  return compile(g, options);
}

bool planned(Executable& exe, int64_t n) {
  auto out = exe.run({{"x", TensorData::zeros(DType::f32, {n})}})[0].to_vector<float>();
  EXPECT_EQ(out, std::vector<float>(size_t(n), 3.f));
  return exe.last_run_stats().planned;
}

}  // namespace

TEST(PlanCache, HotBindingsOutliveCyclingColdOnes) {
  Executable exe = symbolic_executable(3, size_t(1) << 30);
  int64_t cold = 100;
  int hot_planned_late = 0;
  for (int round = 0; round < 8; ++round) {
    bool p1 = planned(exe, 1), p2 = planned(exe, 2);
    if (round >= 2) hot_planned_late += int(p1) + int(p2);
    for (int c = 0; c < 3; ++c) EXPECT_TRUE(planned(exe, cold++));  // each cold one is new
    EXPECT_LE(exe.cached_plans(), 3u);
  }
  // Least-recently-used alone would replan 1 and 2 every round; use counts keep them.
  EXPECT_EQ(hot_planned_late, 0);
}

TEST(PlanCache, BoundedByBytes) {
  // A budget for two plans of these sizes, measured on an unbounded executable.
  Executable probe = symbolic_executable(16, size_t(1) << 30);
  planned(probe, 4100);
  size_t one = probe.arena_bytes() + 256;  // the arena is allocated 256 bytes longer to align
  Executable exe = symbolic_executable(16, 2 * one + one / 2);
  for (int64_t n = 4096; n < 4096 + 6; ++n) {
    EXPECT_TRUE(planned(exe, n));
    EXPECT_LE(exe.cached_plans(), 2u);
    EXPECT_GE(exe.cached_plans(), 1u);
  }
  // A plan larger than the whole budget is still made and kept for its run.
  EXPECT_TRUE(planned(exe, 1 << 16));
  EXPECT_EQ(exe.cached_plans(), 1u);
}

}  // namespace loom
