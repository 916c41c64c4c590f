#include "runtime/kernel_selection.h"

#include <atomic>
#include <chrono>
#include <exception>
#include <limits>

#include "ir/op_registry.h"
#include "loom/error.h"
#include "runtime/tactic_cache.h"
#include "runtime/views.h"

namespace loom {

namespace {
std::atomic<size_t> g_timings{0};
}

size_t tactic_timings() { return g_timings.load(); }

}  // namespace loom

namespace loom::runtime {

std::vector<Candidate> candidates_for(const Backend& backend, const ir::Node& node,
                                      std::span<const TensorView> inputs,
                                      std::span<const TensorView> outputs, void* gather_at) {
  std::vector<Candidate> found;
  std::vector<TensorView> seen;
  for (auto& kernel : backend.kernels(node.op_name())) {
    // A kernel that reads strided inputs is asked with the views first.
    std::vector<bool> gathered(inputs.size(), false);
    seen.assign(inputs.begin(), inputs.end());
    bool as_is = kernel->strided_inputs && (!kernel->supports || kernel->supports(node, seen));
    if (!as_is) {
      for (size_t i = 0; i < seen.size(); ++i)
        if (!plain_view(seen[i])) {
          gathered[i] = true;
          seen[i].data = gather_at;
          seen[i].strides = contiguous_strides(seen[i].shape);
        }
      if (kernel->supports && !kernel->supports(node, seen)) continue;
    }
    if (!kernel->tactics) {
      found.push_back({kernel, Tactic{}, gathered});
      continue;
    }
    for (auto& tactic : kernel->tactics(node, seen, outputs))
      found.push_back({kernel, std::move(tactic), gathered});
  }
  return found;
}

std::vector<TensorView> candidate_inputs(const Candidate& c, std::span<const TensorView> inputs,
                                         std::span<const TensorView> gathered) {
  std::vector<TensorView> out(inputs.begin(), inputs.end());
  for (size_t i = 0; i < out.size(); ++i)
    if (c.gathered[i]) out[i] = gathered[i];
  return out;
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
                      std::span<const TensorView> gathered, std::span<TensorView> outputs,
                      void* workspace) {
  using clock = std::chrono::steady_clock;
  constexpr int kRepeats = 3;
  Timed best;
  std::exception_ptr first_error;
  for (size_t i = 0; i < candidates.size(); ++i) {
    const Candidate& c = candidates[i];
    std::shared_ptr<void> state;  // built by the warm-up call, dropped after timing
    KernelContext ctx{backend, stream, &state, &c.tactic, workspace, c.tactic.workspace_bytes};
    double fastest = std::numeric_limits<double>::infinity();
    // A candidate that needs its inputs gathered is timed with the gathers: a kernel that
    // reads the view as it is saves them.
    const std::vector<TensorView> in = candidate_inputs(c, inputs, gathered);
    auto run = [&] {
      for (size_t k = 0; k < in.size(); ++k)
        if (c.gathered[k])
          backend.copy_strided(in[k].data, inputs[k].data, storage_bytes(in[k].dtype, 1),
                               inputs[k].shape, inputs[k].strides, stream);
      c.kernel->run(ctx, node, in, outputs);
    };
    try {
      run();
      backend.synchronize(stream);
      // The fastest of a few calls: interruptions only ever add time. Host time around a
      // synchronised call, so it works on every backend (launch latency included on a GPU).
      for (int r = 0; r < kRepeats; ++r) {
        auto start = clock::now();
        run();
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
