// A plan: everything a run needs for one binding of the symbolic dims, made once and
// reused, so that a steady-state run only copies feeds, launches kernels and copies out.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "ir/node.h"

namespace loom::runtime {

struct Step {
  const ir::Node* node = nullptr;
  const Kernel* kernel = nullptr;
  std::vector<TensorView> inputs;
  std::vector<TensorView> outputs;
  std::shared_ptr<void> state;  // the kernel's per-node cache
  size_t bytes_written = 0;
};

struct FeedSlot {
  std::string name;
  TensorView view;
};

// How many plans (symbol bindings) an executable keeps; the least recently used goes first.
inline constexpr size_t kMaxCachedPlans = 16;

struct Plan {
  SymbolBinding binding;
  std::shared_ptr<Buffer> arena;
  size_t arena_bytes = 0;
  size_t unshared_bytes = 0;
  std::vector<FeedSlot> feeds;
  std::vector<Step> steps;         // in program order, assigns excluded
  std::vector<Step> assign_steps;  // run after the outputs are copied
  // (variable buffer, arena copy) pairs copied before the assigns run.
  std::vector<std::pair<TensorView, TensorView>> snapshots;
  std::vector<TensorView> outputs;
  size_t bytes_written = 0;
  // CUDA graph of `steps`: captured on the second run, replayed from the third.
  int runs = 0;
  uint64_t last_used = 0;  // the executable's run count when this plan last ran
  bool capture_failed = false;
  std::shared_ptr<void> graph;
};

}  // namespace loom::runtime
