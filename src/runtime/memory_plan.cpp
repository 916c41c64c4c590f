// Greedy best-fit by size: the largest values are placed first at the lowest offset where
// they overlap no placed value that is alive at the same time (the approach of TFLite's
// and ONNX Runtime's arena planners).
#include "runtime/memory_plan.h"

#include <algorithm>
#include <cstdint>
#include <numeric>

namespace loom::runtime {

static size_t align_up(size_t n) {
  return (n + kArenaAlignment - 1) / kArenaAlignment * kArenaAlignment;
}

ArenaLayout plan_arena(const std::vector<Lifetime>& values) {
  ArenaLayout layout;
  layout.offsets.assign(values.size(), 0);
  std::vector<size_t> order(values.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return values[a].bytes > values[b].bytes; });
  std::vector<size_t> placed;
  for (size_t v : order) {
    size_t size = align_up(std::max<size_t>(values[v].bytes, 1));
    layout.unshared_bytes += size;
    // Intervals of placed values that live at the same time, by offset.
    std::vector<std::pair<size_t, size_t>> busy;
    for (size_t p : placed) {
      if (values[p].last < values[v].first || values[v].last < values[p].first) continue;
      busy.emplace_back(layout.offsets[p],
                        layout.offsets[p] + align_up(std::max<size_t>(values[p].bytes, 1)));
    }
    std::sort(busy.begin(), busy.end());
    size_t offset = 0, best = SIZE_MAX, best_gap = SIZE_MAX;
    for (const auto& [start, end] : busy) {
      if (start >= offset && start - offset >= size && start - offset < best_gap) {
        best = offset;
        best_gap = start - offset;
      }
      offset = std::max(offset, end);
    }
    if (best == SIZE_MAX) best = offset;
    layout.offsets[v] = best;
    layout.total_bytes = std::max(layout.total_bytes, best + size);
    placed.push_back(v);
  }
  return layout;
}

}  // namespace loom::runtime
