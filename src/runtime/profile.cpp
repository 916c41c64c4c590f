// Executable::profile: one ordinary run (feeds, steps, assigns) whose steps run one at a
// time, eagerly, each timed by the host clock around the kernel call and a synchronisation,
// so the time is the step's alone on every backend (on a GPU it includes the launch).
#include <chrono>

#include "loom/error.h"
#include "runtime/executable_impl.h"

namespace loom {

std::vector<NodeTime> Executable::profile(const Feeds& feeds) {
  Impl& impl = checked_impl(impl_);
  std::lock_guard<std::mutex> lock(impl.mutex);
  auto store_lock = impl.variables->lock();
  DeviceScope device_scope(*impl.backend);
  impl.stats = RunStats{};
  const std::vector<int64_t>& key = impl.bind(feeds);
  runtime::Plan& plan = impl.plan_for(key);
  std::vector<NodeTime> times;
  auto timed = [&](std::vector<runtime::Step>& steps) {
    using clock = std::chrono::steady_clock;
    for (auto& step : steps) {
      auto start = clock::now();
      KernelContext ctx{*impl.backend,      impl.stream,    &step.state,
                        &step.tactic,       step.workspace, step.tactic.workspace_bytes,
                        &impl.kernel_cache, &impl.callables};
      step.kernel->run(ctx, *step.node, step.inputs, step.outputs);
      impl.backend->synchronize(impl.stream);
      double ms = std::chrono::duration<double, std::milli>(clock::now() - start).count();
      std::string kernel = step.kernel->name;
      if (!step.tactic.name.empty()) kernel += "#" + step.tactic.name;
      times.push_back({step.node->id, step.node->op_name(), kernel, ms});
    }
  };
  std::vector<TensorData> outputs;
  try {
    impl.backend->wait_for_handoffs(impl.stream);
    impl.copy_feeds(plan, feeds);
    impl.backend->synchronize(impl.stream);
    timed(plan.steps);
    impl.copy_outputs(plan, outputs);
    for (const auto& [from, to] : plan.snapshots)
      impl.backend->copy(to.data, impl.device, from.data, impl.device, from.nbytes(), impl.stream);
    impl.backend->synchronize(impl.stream);
    timed(plan.assign_steps);
  } catch (...) {
    try {
      impl.backend->synchronize(impl.stream);
    } catch (const Error&) {
    }
    throw;
  }
  impl.stats.kernels = plan.steps.size() + plan.assign_steps.size();
  impl.stats.bytes_written = plan.bytes_written;
  impl.last_profile = times;
  return times;
}

}  // namespace loom
