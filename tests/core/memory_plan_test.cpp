#include "runtime/memory_plan.h"

#include <gtest/gtest.h>

#include <random>

namespace loom::runtime {

// Brute-force check: no two values that are alive at the same time share a byte.
static void expect_no_overlap(const std::vector<Lifetime>& values, const ArenaLayout& layout) {
  for (size_t a = 0; a < values.size(); ++a)
    for (size_t b = a + 1; b < values.size(); ++b) {
      bool alive_together = !(values[a].last < values[b].first || values[b].last < values[a].first);
      bool share_bytes = layout.offsets[a] < layout.offsets[b] + values[b].bytes &&
                         layout.offsets[b] < layout.offsets[a] + values[a].bytes;
      EXPECT_FALSE(alive_together && share_bytes) << "values " << a << " and " << b;
      EXPECT_LE(layout.offsets[a] + values[a].bytes, layout.total_bytes);
    }
}

TEST(MemoryPlan, ChainReusesMemory) {
  // A chain: each value dies when the next is made, so two buffers suffice.
  std::vector<Lifetime> chain;
  for (int i = 0; i < 10; ++i) chain.push_back({1024, i, i + 1});
  auto layout = plan_arena(chain);
  expect_no_overlap(chain, layout);
  EXPECT_EQ(layout.unshared_bytes, 10u * 1024u);
  EXPECT_EQ(layout.total_bytes, 2u * 1024u);
}

TEST(MemoryPlan, AllAliveNeedsTheSum) {
  std::vector<Lifetime> values = {{100, 0, 5}, {300, 1, 5}, {50, 2, 5}};
  auto layout = plan_arena(values);
  expect_no_overlap(values, layout);
  EXPECT_EQ(layout.total_bytes, layout.unshared_bytes);
}

TEST(MemoryPlan, RandomLifetimesNeverOverlap) {
  std::mt19937 gen(3);
  for (int trial = 0; trial < 50; ++trial) {
    std::vector<Lifetime> values;
    for (int i = 0; i < 40; ++i) {
      int first = int(gen() % 30);
      values.push_back({size_t(gen() % 5000 + 1), first, first + int(gen() % 8)});
    }
    auto layout = plan_arena(values);
    expect_no_overlap(values, layout);
    EXPECT_LE(layout.total_bytes, layout.unshared_bytes);
    for (auto o : layout.offsets) EXPECT_EQ(o % kArenaAlignment, 0u);
  }
}

}  // namespace loom::runtime
