// Running a plan: feeds in, kernels (eager or a replayed CUDA graph), outputs out, assigns.
#include <string>

#include "loom/error.h"
#include "runtime/executable_impl.h"

namespace loom {

using runtime::Plan;
using runtime::Step;

void Executable::Impl::copy_feeds(const Plan& plan, const Feeds& feeds) {
  for (const auto& slot : plan.feeds) {
    const TensorData& data = feeds.at(slot.name);
    // Only a strided feed is gathered first; a contiguous one is copied straight in.
    TensorData gathered;
    if (!data.is_contiguous()) gathered = data.contiguous();
    const TensorData& src = data.is_contiguous() ? data : gathered;
    Device from = src.device();
    Backend& b = (from == Device::cpu() || from == device) ? *backend : backend_for(from);
    b.copy(slot.view.data, device, src.data(), from, slot.view.nbytes(), stream);
    if (gathered.defined()) b.synchronize(stream);  // the gathered copy is freed next
  }
}

void Executable::Impl::launch(std::vector<Step>& steps) {
  for (auto& step : steps) {
    KernelContext ctx{*backend, stream, &step.state};
    try {
      step.kernel->run(ctx, *step.node, step.inputs, step.outputs);
    } catch (const Error& e) {
      if (e.kind() != ErrorKind::device) throw;
      throw Error(e.kind(), step.node->op_name() + " (%" + std::to_string(step.node->id) +
                                ", kernel " + step.kernel->name + "): " + e.what());
    }
  }
}

void Executable::Impl::run_steps(Plan& plan) {
  bool use_graphs = cuda_graphs && backend->supports_graphs() && !plan.capture_failed;
  stats.replayed_graph = false;
  if (use_graphs && plan.graph) {
    backend->replay(plan.graph, stream);
    stats.replayed_graph = true;
  } else if (use_graphs && plan.runs >= 1) {
    // Kernels have built their per-node state on the eager first run; capture now.
    backend->begin_capture(stream);
    try {
      launch(plan.steps);
    } catch (...) {
      try {
        backend->end_capture(stream);
      } catch (const Error&) {
      }
      throw;
    }
    try {
      plan.graph = backend->end_capture(stream);
    } catch (const Error&) {
      plan.capture_failed = true;
    }
    if (plan.graph) {
      backend->replay(plan.graph, stream);
      stats.replayed_graph = true;
    } else {
      plan.capture_failed = true;
      launch(plan.steps);
    }
  } else {
    launch(plan.steps);
  }
  ++plan.runs;
}

void Executable::Impl::copy_outputs(const Plan& plan, std::vector<TensorData>& outputs) {
  outputs.resize(plan.outputs.size());
  for (size_t i = 0; i < plan.outputs.size(); ++i) {
    const TensorView& v = plan.outputs[i];
    TensorData& out = outputs[i];
    bool reusable = out.defined() && out.dtype() == v.dtype && out.shape() == v.shape &&
                    out.device() == device && out.is_contiguous();
    for (size_t j = 0; reusable && j < i; ++j) reusable = outputs[j].buffer() != out.buffer();
    if (!reusable) out = TensorData::empty(v.dtype, v.shape, device);
    backend->copy(out.data(), device, v.data, device, v.nbytes(), stream);
  }
}

std::vector<TensorData> Executable::run(const Feeds& feeds) {
  std::vector<TensorData> outputs;
  run(feeds, outputs);
  return outputs;
}

void Executable::run(const Feeds& feeds, std::vector<TensorData>& outputs) {
  Impl& impl = checked_impl(impl_);
  const std::vector<int64_t>& key = impl.bind(feeds);
  auto it = impl.plans.find(key);
  impl.stats = RunStats{};
  if (it == impl.plans.end()) {
    // Each plan holds an arena (and on CUDA a graph): keep the most recently used ones only,
    // so that, say, prefills of many lengths do not grow memory without bound.
    if (impl.plans.size() >= runtime::kMaxCachedPlans) {
      auto oldest = impl.plans.begin();
      for (auto p = impl.plans.begin(); p != impl.plans.end(); ++p)
        if (p->second->last_used < oldest->second->last_used) oldest = p;
      if (impl.last_plan == oldest->second.get()) impl.last_plan = nullptr;
      impl.plans.erase(oldest);
    }
    SymbolBinding binding;
    for (size_t i = 0; i < impl.symbols.size(); ++i) binding[impl.symbols[i]] = key[i];
    it = impl.plans.emplace(key, impl.make_plan(binding)).first;
    impl.stats.planned = true;
  }
  Plan& plan = *it->second;
  impl.last_plan = &plan;
  plan.last_used = ++impl.run_count;
  impl.copy_feeds(plan, feeds);
  impl.backend->activate();  // a feed copied from another device may have switched it
  impl.run_steps(plan);
  impl.copy_outputs(plan, outputs);
  for (const auto& [from, to] : plan.snapshots)
    impl.backend->copy(to.data, impl.device, from.data, impl.device, from.nbytes(), impl.stream);
  impl.launch(plan.assign_steps);
  impl.backend->synchronize(impl.stream);
  impl.stats.kernels = plan.steps.size() + plan.assign_steps.size();
  impl.stats.bytes_written = plan.bytes_written;
}

}  // namespace loom
