// Choosing a kernel and tactic per node: every registered kernel that supports the node
// offers its tactics; with one candidate it is taken, with several the choice comes from the
// tactic cache or from timing each candidate on the node's own shapes (TensorRT's tactics).
#pragma once

#include <memory>
#include <span>
#include <vector>

#include "backends/backend.h"

namespace loom::runtime {

struct Candidate {
  std::shared_ptr<const Kernel> kernel;
  Tactic tactic;
  std::vector<bool> gathered;  // [i]: input i is gathered contiguous before the kernel runs
};

// Every (kernel, tactic) pair that can run the node, kernels in registration order. Inputs
// may be strided views: a kernel that does not read them as they are (Kernel::strided_inputs
// and its `supports`) is asked, and later run, with every input that is not a plain view
// (runtime/views.h) gathered contiguous (at `gather_at`, 256-byte aligned, while planning).
std::vector<Candidate> candidates_for(const Backend& backend, const ir::Node& node,
                                      std::span<const TensorView> inputs,
                                      std::span<const TensorView> outputs, void* gather_at);

// The inputs a candidate runs on: `inputs`, with each gathered one replaced by `gathered[i]`.
std::vector<TensorView> candidate_inputs(const Candidate& c, std::span<const TensorView> inputs,
                                         std::span<const TensorView> gathered);

// Throws loom::Error(unsupported) naming the op, its operands' dtypes and shapes and the device.
[[noreturn]] void fail_no_kernel(Device device, const ir::Node& node,
                                 std::span<const TensorView> inputs);

// Whether a node needs a kernel call (sources and pure aliases do not).
bool needs_kernel(const ir::Node& node);

struct Timed {
  size_t index = 0;  // into the candidates
  double ms = -1;    // its best time over a few calls
  int tried = 0;     // candidates that ran
};

// Runs each candidate a few times on these views (their data is overwritten; `workspace`
// holds every candidate's workspace; `gathered[i]` is input i's contiguous copy for the
// candidates that gather it) and returns the fastest. A candidate that throws is skipped;
// when all throw, the first error is rethrown.
Timed time_candidates(Backend& backend, void* stream, const ir::Node& node,
                      const std::vector<Candidate>& candidates, std::span<const TensorView> inputs,
                      std::span<const TensorView> gathered, std::span<TensorView> outputs,
                      void* workspace);

}  // namespace loom::runtime
