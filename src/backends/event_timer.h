// Device-side timing for Executable::profile: an event recorded on a stream, and the
// milliseconds between two recorded events, read once the stream is synchronised. A backend
// whose work runs asynchronously implements it beside Backend (CUDA); the profiler asks with
// dynamic_cast and uses the host clock where it is absent (the CPU, whose kernels finish
// before they return). Kept out of Backend so that backends without it carry nothing.
#pragma once

namespace loom {

class EventTimer {
 public:
  virtual ~EventTimer() = default;
  virtual void* create_event() = 0;                      // never null; throws loom::Error
  virtual void destroy_event(void* event) noexcept = 0;  // null is ignored
  virtual void record_event(void* event, void* stream) = 0;
  virtual double elapsed_ms(void* start, void* end) = 0;  // both recorded and complete
};

}  // namespace loom
