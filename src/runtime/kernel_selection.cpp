#include "runtime/kernel_selection.h"

#include <atomic>
#include <chrono>
#include <exception>
#include <limits>

#include "ir/op_registry.h"
#include "loom/error.h"
#include "runtime/tactic_cache.h"

namespace loom {

namespace {
std::atomic<size_t> g_timings{0};
}

size_t tactic_timings() { return g_timings.load(); }

}  // namespace loom

namespace loom::runtime {

std::vector<Candidate> candidates_for(const Backend& backend, const ir::Node& node,
                                      std::span<const TensorView> inputs,
                                      std::span<const TensorView> outputs) {
  std::vector<Candidate> found;
  for (auto& kernel : backend.kernels_for(node, inputs)) {
    if (!kernel->tactics) {
      found.push_back({kernel, Tactic{}});
      continue;
    }
    for (auto& tactic : kernel->tactics(node, inputs, outputs))
      found.push_back({kernel, std::move(tactic)});
  }
  return found;
}

void fail_no_kernel(Device device, const ir::Node& node, std::span<const TensorView> inputs) {
  std::string in;
  for (const auto& v : inputs)
    in += std::string(in.empty() ? "" : ", ") + dtype_name(v.dtype) + to_string(v.shape);
  fail(ErrorKind::unsupported, "no " + device.str() + " kernel for op '" + node.op_name() + "' (%" +
                                   std::to_string(node.id) + ") with inputs (" + in + ")");
}

bool needs_kernel(const ir::Node& node) {
  if (node.op->is_source) return false;
  return node.op->aliases_input < 0 || node.op->writes_state();
}

Timed time_candidates(Backend& backend, void* stream, const ir::Node& node,
                      const std::vector<Candidate>& candidates, std::span<const TensorView> inputs,
                      std::span<TensorView> outputs, void* workspace) {
  using clock = std::chrono::steady_clock;
  constexpr int kRepeats = 3;
  Timed best;
  std::exception_ptr first_error;
  for (size_t i = 0; i < candidates.size(); ++i) {
    const Candidate& c = candidates[i];
    std::shared_ptr<void> state;  // built by the warm-up call, dropped after timing
    KernelContext ctx{backend, stream, &state, &c.tactic, workspace, c.tactic.workspace_bytes};
    double fastest = std::numeric_limits<double>::infinity();
    try {
      c.kernel->run(ctx, node, inputs, outputs);
      backend.synchronize(stream);
      // The fastest of a few calls: interruptions only ever add time. Host time around a
      // synchronised call, so it works on every backend (launch latency included on a GPU).
      for (int r = 0; r < kRepeats; ++r) {
        auto start = clock::now();
        c.kernel->run(ctx, node, inputs, outputs);
        backend.synchronize(stream);
        fastest = std::min(fastest,
                           std::chrono::duration<double, std::milli>(clock::now() - start).count());
      }
    } catch (const Error&) {
      if (!first_error) first_error = std::current_exception();
      try {
        backend.synchronize(stream);
      } catch (const Error&) {
      }
      continue;
    }
    ++g_timings;
    ++best.tried;
    if (best.ms < 0 || fastest < best.ms) {
      best.ms = fastest;
      best.index = i;
    }
  }
  if (best.tried == 0) std::rethrow_exception(first_error);
  return best;
}

}  // namespace loom::runtime
