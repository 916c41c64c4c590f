// Running a plan: feeds in, kernels (eager or a replayed CUDA graph), outputs out, assigns.
#include <functional>
#include <string>

#include "backends/strided_views.h"
#include "loom/error.h"
#include "runtime/executable_impl.h"

namespace loom {

using runtime::Plan;
using runtime::Step;

// A feed on the CPU executable's own device, contiguous and 16-byte aligned (as NumPy and
// malloc give; no CPU kernel needs more, they load unaligned), is read where it is: its uses
// point at it for this run. Every other feed is copied into its arena slot.
// (On CUDA a captured graph holds the arena addresses, and tactics were chosen for the
// arena's alignment, so feeds are always copied there.)
void Executable::Impl::copy_feeds(Plan& plan, const Feeds& feeds) {
  in_place_feeds.clear();
  for (auto& slot : plan.feeds) {
    const TensorData& data = feeds.at(slot.name);
    bool in_place = device.kind == DeviceKind::cpu && data.device() == device &&
                    data.is_contiguous() &&
                    reinterpret_cast<uintptr_t>(data.data()) % runtime::kInPlaceAlignment == 0;
    char* read_at = static_cast<char*>(in_place ? data.data() : slot.view.data);
    for (size_t u = 0; u < slot.uses.size(); ++u)
      slot.uses[u]->data = read_at + slot.use_offsets[u];
    if (in_place) {
      in_place_feeds.push_back(data.buffer().get());
      continue;
    }
    // Only a strided feed is gathered first; a contiguous one is copied straight in.
    TensorData gathered;
    if (!data.is_contiguous()) gathered = data.contiguous();
    const TensorData& src = data.is_contiguous() ? data : gathered;
    Device from = src.device();
    Backend& b = (from == Device::cpu() || from == device) ? *backend : backend_for(from);
    b.copy(slot.view.data, device, src.data(), from, slot.view.nbytes(), stream);
    stats.feed_bytes_copied += slot.view.nbytes();
    if (gathered.defined()) b.synchronize(stream);  // the gathered copy is freed next
  }
}

// A value's elements into contiguous memory on the device: one copy, or a gather of a view.
void Executable::Impl::copy_view(void* dst, const TensorView& v) {
  if (is_contiguous(v))
    backend->copy(dst, device, v.data, device, v.nbytes(), stream);
  else
    backend->copy_strided(dst, v.data, storage_bytes(v.dtype, 1), v.shape, v.strides, stream);
}

void Executable::Impl::launch(std::vector<Step>& steps, const StepHook* hook) {
  for (auto& step : steps) {
    if (hook) (*hook)(step, false);
    for (const auto& g : step.gathers)
      backend->copy_strided(g.copy.data, g.view.data, storage_bytes(g.view.dtype, 1), g.view.shape,
                            g.view.strides, stream);
    KernelContext ctx{*backend,      stream,         &step.state,
                      &step.tactic,  step.workspace, step.tactic.workspace_bytes,
                      &kernel_cache, &callables,     step.invariant_inputs};
    try {
      step.kernel->run(ctx, *step.node, step.inputs, step.outputs);
    } catch (const Error& e) {
      if (e.kind() != ErrorKind::device) throw;
      throw Error(e.kind(), step.node->op_name() + " (%" + std::to_string(step.node->id) +
                                ", kernel " + step.kernel->name + "): " + e.what());
    }
    if (hook) (*hook)(step, true);
  }
}

// Captures the plan's steps as a graph; false (the stream usable again) on any failure, since
// a capture that fails is a missed optimisation, never the run's error: the caller runs the
// steps eagerly, and a kernel that really fails fails there.
static bool try_capture(Backend& backend, void* stream, Plan& plan,
                        const std::function<void()>& launch_steps) {
  try {
    if (!backend.begin_capture(stream)) return false;  // no capture started: run eagerly
  } catch (...) {
    return false;
  }
  try {
    launch_steps();
  } catch (...) {
    try {
      backend.end_capture(stream);
    } catch (...) {
    }
    return false;
  }
  try {
    plan.graph = backend.end_capture(stream);
  } catch (...) {
    plan.graph = nullptr;
  }
  return plan.graph != nullptr;
}

void Executable::Impl::run_steps(Plan& plan) {
  bool use_graphs = cuda_graphs && backend->supports_graphs();
  stats.replayed_graph = false;
  if (plan.graph && !call_sites.empty() && !callables_stamp_matches(plan.callables_stamp)) {
    // A callee was rebound or replanned: the graph holds its old kernels and arena. This run
    // is eager (a new callee plans and builds its kernels' state), the next one captures.
    plan.graph = nullptr;
    plan.capture_attempts = 0;
    plan.next_capture_run = plan.runs + 1;
  }
  if (use_graphs && plan.graph) {
    backend->replay(plan.graph, stream);
    stats.replayed_graph = true;
  } else if (use_graphs && plan.runs >= plan.next_capture_run &&
             plan.capture_attempts < runtime::kMaxCaptureAttempts) {
    // Kernels have built their per-node state on an eager run; capture now.
    ++plan.capture_attempts;
    if (!call_sites.empty()) callables_stamp(plan.callables_stamp);
    if (try_capture(*backend, stream, plan, [&] { launch(plan.steps); })) {
      backend->replay(plan.graph, stream);
      stats.replayed_graph = true;
    } else {
      // Retried later, further apart each time, at most kMaxCaptureAttempts in all.
      plan.next_capture_run = plan.runs + 1 + (4 << plan.capture_attempts);
      launch(plan.steps);
    }
  } else {
    launch(plan.steps);
  }
  ++plan.runs;
}

namespace {

bool overlaps(const void* a, size_t a_bytes, const void* b, size_t b_bytes) {
  auto x = reinterpret_cast<uintptr_t>(a), y = reinterpret_cast<uintptr_t>(b);
  return x < y + b_bytes && y < x + a_bytes;
}

}  // namespace

// Whether the caller's outputs[i] can take output i: the same dtype, shape and device,
// contiguous, a buffer no earlier output uses, and no feed read in place (which a later step,
// output or assign may still read) in its bytes.
static bool reusable_output(const TensorData& out, const TensorView& v,
                            const std::vector<TensorData>& outputs, size_t i,
                            const std::vector<const Buffer*>& in_place_feeds, Device device) {
  bool reusable = out.defined() && out.dtype() == v.dtype && out.shape() == v.shape &&
                  out.device() == device && out.is_contiguous();
  for (size_t j = 0; reusable && j < i; ++j) reusable = outputs[j].buffer() != out.buffer();
  for (const Buffer* feed : in_place_feeds)
    reusable = reusable && feed != out.buffer().get() &&
               !overlaps(feed->data(), feed->bytes(), out.data(), v.nbytes());
  return reusable;
}

void Executable::Impl::bind_outputs(Plan& plan, std::vector<TensorData>& outputs) {
  outputs.resize(plan.outputs.size());
  direct_outputs.assign(outputs.size(), false);
  if (device.kind != DeviceKind::cpu) return;
  for (size_t i = 0; i < plan.outputs.size(); ++i) {
    runtime::OutputSlot& slot = plan.output_slots[i];
    if (!slot.direct) continue;
    const TensorView& v = plan.outputs[i];
    TensorData& out = outputs[i];
    if (!reusable_output(out, v, outputs, i, in_place_feeds, device))
      out = TensorData::empty(v.dtype, v.shape, device);
    if (reinterpret_cast<uintptr_t>(out.data()) % runtime::kInPlaceAlignment != 0) continue;
    char* at = static_cast<char*>(out.data());
    for (size_t u = 0; u < slot.uses.size(); ++u) slot.uses[u]->data = at + slot.use_offsets[u];
    direct_outputs[i] = true;
  }
}

void Executable::Impl::unbind_outputs(Plan& plan) {
  for (size_t i = 0; i < direct_outputs.size() && i < plan.output_slots.size(); ++i) {
    if (!direct_outputs[i]) continue;
    runtime::OutputSlot& slot = plan.output_slots[i];
    for (size_t u = 0; u < slot.uses.size(); ++u)
      slot.uses[u]->data = slot.arena_data + slot.use_offsets[u];
  }
  direct_outputs.clear();
}

void Executable::Impl::copy_outputs(const Plan& plan, std::vector<TensorData>& outputs) {
  outputs.resize(plan.outputs.size());
  for (size_t i = 0; i < plan.outputs.size(); ++i) {
    if (i < direct_outputs.size() && direct_outputs[i]) continue;  // written in place
    const TensorView& v = plan.outputs[i];
    TensorData& out = outputs[i];
    if (!reusable_output(out, v, outputs, i, in_place_feeds, device))
      out = TensorData::empty(v.dtype, v.shape, device);
    copy_view(out.data(), v);
  }
}

std::vector<TensorData> Executable::run(const Feeds& feeds) {
  std::vector<TensorData> outputs;
  run(feeds, outputs);
  return outputs;
}

Executable::Impl::RunScope::RunScope(Impl& impl)
    : lock(impl.mutex), store_lock(impl.variables->lock()), device(*impl.backend) {
  impl.stats = RunStats{};
}

void Executable::Impl::execute(Plan& plan, const Feeds& feeds, std::vector<TensorData>& outputs,
                               const StepHook* hook) {
  try {
    // Feeds handed over by other libraries (DLPack) are ordered before they are read.
    backend->wait_for_handoffs(stream);
    copy_feeds(plan, feeds);
    if (hook) {
      launch(plan.steps, hook);  // eager, never captured; no output written in place
    } else {
      bind_outputs(plan, outputs);
      run_steps(plan);
    }
    copy_outputs(plan, outputs);
    for (const auto& [from, to] : plan.snapshots) copy_view(to.data, from);
    launch(plan.assign_steps, hook);
    backend->synchronize(stream);
    unbind_outputs(plan);
  } catch (...) {
    unbind_outputs(plan);
    // Nothing queued may outlive the error: the caller may free the feeds or retry at once.
    try {
      backend->synchronize(stream);
    } catch (const Error&) {
    }
    throw;
  }
  stats.kernels = plan.steps.size() + plan.assign_steps.size() + plan.gathers;
  stats.bytes_written = plan.bytes_written;
}

void Executable::run(const Feeds& feeds, std::vector<TensorData>& outputs) {
  Impl& impl = checked_impl(impl_);
  Impl::RunScope scope(impl);
  Plan& plan = impl.plan_for(impl.bind(feeds));
  impl.execute(plan, feeds, outputs);
}

}  // namespace loom
