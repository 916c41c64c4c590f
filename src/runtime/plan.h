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
  std::shared_ptr<const Kernel> kernel;
  Tactic tactic;
  void* workspace = nullptr;  // in the arena, tactic.workspace_bytes long
  double measured_ms = -1;    // the chosen candidate's time, when it was timed (or cached)
  int tried = 0;              // candidates timed for this choice
  std::vector<TensorView> inputs;
  std::vector<TensorView> outputs;
  std::shared_ptr<void> state;  // the kernel's per-node cache
  size_t bytes_written = 0;
  uint64_t invariant_inputs = 0;  // KernelContext::invariant_inputs
  // Inputs gathered into contiguous arena copies before the kernel runs: the views it does
  // not read as they are (runtime/views.h). inputs[input] is then `copy`.
  struct Gather {
    size_t input = 0;
    TensorView view, copy;
  };
  std::vector<Gather> gathers;
};

// One value of the arena (the memory plan), kept for packages and the viewer.
struct ArenaBuffer {
  int node_id = 0;
  // -1: the step's workspace; -2: an assign's snapshot; -3: a view gathered contiguous.
  int output = 0;
  size_t offset = 0;
  size_t bytes = 0;
  int first = 0;  // first and last step (program position) it is alive
  int last = 0;
};

struct FeedSlot {
  std::string name;
  TensorView view;  // the placeholder's bytes in the arena
  // Views that read the feed (in steps and outputs): pointed at the caller's data when it can
  // be read in place, else at `view.data`.
  std::vector<TensorView*> uses;
  std::vector<size_t> use_offsets;  // bytes from the feed's start to each use's first element
};

// Feeds and outputs the CPU reads and writes where the caller's memory is (a run's feeds,
// the buffers of Executable::run(feeds, outputs)): aligned to this many bytes.
inline constexpr size_t kInPlaceAlignment = 16;

// A program output that its step writes straight into the caller's buffer (CPU only): a
// value with arena storage of its own, contiguous, made by a step, that no assign snapshots
// and no step updates in place. `uses` are every view of it (the step's output, later
// readers, the plan's outputs); a run points them at the caller's buffer and back at the
// arena (`arena_data`) when it ends.
struct OutputSlot {
  bool direct = false;
  char* arena_data = nullptr;
  std::vector<TensorView*> uses;
  std::vector<size_t> use_offsets;  // bytes from the value's start to each use's first element
};

// Captures tried per plan before it runs eagerly for good; failures space the next try out.
inline constexpr int kMaxCaptureAttempts = 3;

struct Plan {
  SymbolBinding binding;
  std::shared_ptr<Buffer> arena;
  size_t arena_bytes = 0;
  size_t unshared_bytes = 0;
  size_t workspace_bytes = 0;  // the largest step workspace, inside the arena
  std::vector<FeedSlot> feeds;
  std::vector<Step> steps;         // in program order, assigns excluded
  std::vector<Step> assign_steps;  // run after the outputs are copied
  // (variable buffer, arena copy) pairs copied before the assigns run.
  std::vector<std::pair<TensorView, TensorView>> snapshots;
  std::vector<TensorView> outputs;
  std::vector<OutputSlot> output_slots;  // one per output
  std::vector<ArenaBuffer> buffers;      // the arena's layout
  size_t gathers = 0;                    // copies the planner put before kernels (Step::gathers)
  size_t bytes_written = 0;
  // CUDA graph of `steps`: captured on the second run, replayed from the third. A failed
  // capture runs eagerly and is retried from run `next_capture_run`.
  int runs = 0;
  int capture_attempts = 0;
  int next_capture_run = 1;
  std::shared_ptr<void> graph;
  std::vector<uint64_t> callables_stamp;  // Impl::callables_stamp when `graph` was captured
  // For the plan cache's eviction: runs of this plan (halved now and then, so that a binding
  // that was hot long ago cools down) and the executable's run count at its last run.
  uint64_t uses = 0;
  uint64_t last_used = 0;
};

}  // namespace loom::runtime
