// Executable::profile: one ordinary run (feeds, steps, assigns), eager and never captured,
// through run.cpp's Impl::execute and its launch loop with a hook around each step. On a backend
// with device events (an EventTimer: CUDA) the hook records an event pair on the executable's
// stream around the step's kernels, and the times are read after the run's one synchronisation, so
// they are the kernels' device time without the host's launch overhead. Elsewhere (the CPU, whose
// kernels finish before they return) the hook reads the host clock around the step.
// Times of different steps never overlap: each covers its own step only (feeds, output
// copies and hook overhead fall between them), so together they are at most the run's time.
#include <chrono>

#include "backends/event_timer.h"
#include "runtime/executable_impl.h"

namespace loom {

namespace {

// Owns the events of one profiled run: every one is destroyed, also when the run throws.
class Events {
 public:
  explicit Events(EventTimer* timer) : timer_(timer) {}
  ~Events() {
    for (void* e : events_) timer_->destroy_event(e);
  }
  void* create() {
    if (!timer_) return nullptr;
    events_.reserve(events_.size() + 1);  // no throw between creating and owning
    void* e = timer_->create_event();
    events_.push_back(e);
    return e;
  }

 private:
  EventTimer* timer_;
  std::vector<void*> events_;
};

}  // namespace

std::vector<NodeTime> Executable::profile(const Feeds& feeds) {
  Impl& impl = checked_impl(impl_);
  Impl::RunScope scope(impl);
  runtime::Plan& plan = impl.plan_for(impl.bind(feeds));
  Backend& backend = *impl.backend;

  using clock = std::chrono::steady_clock;
  struct Pending {
    const runtime::Step* step;
    void* start = nullptr;  // device events, or null: `ms` holds a host-clock time
    void* end = nullptr;
    double ms = 0;
  };
  std::vector<Pending> pending;
  pending.reserve(plan.steps.size() + plan.assign_steps.size());
  auto* timer = dynamic_cast<EventTimer*>(&backend);  // null: the host clock
  Events events(timer);
  clock::time_point host_start;
  Impl::StepHook hook = [&](runtime::Step& step, bool after) {
    if (!after) {
      Pending p{&step};
      p.start = events.create();
      if (p.start) {
        p.end = events.create();
        timer->record_event(p.start, impl.stream);
      } else {
        host_start = clock::now();
      }
      pending.push_back(p);
      return;
    }
    Pending& p = pending.back();
    if (p.end) {
      timer->record_event(p.end, impl.stream);
    } else {
      backend.synchronize(impl.stream);  // a no-op on the CPU; any other backend's work
      p.ms = std::chrono::duration<double, std::milli>(clock::now() - host_start).count();
    }
  };

  std::vector<TensorData> outputs;
  impl.execute(plan, feeds, outputs, &hook);

  std::vector<NodeTime> times;
  times.reserve(pending.size());
  for (const Pending& p : pending) {
    const runtime::Step& step = *p.step;
    std::string kernel = step.kernel->name;
    if (!step.tactic.name.empty()) kernel += "#" + step.tactic.name;
    double ms = p.end ? timer->elapsed_ms(p.start, p.end) : p.ms;
    times.push_back({step.node->id, step.node->op_name(), kernel, ms});
  }
  impl.last_profile = times;
  return times;
}

}  // namespace loom
