// Device memory handed between Loom and other libraries' streams (DLPack's stream exchange),
// ordered on the device with events, never by a host wait.
//
// Incoming: a producer (torch) makes its work visible on the backend's handoff stream, either
// itself (__dlpack__(stream=handoff)) or through an event Loom records on the producer's
// stream; each handoff bumps a counter. Any Loom stream that then reads or writes device
// memory through a copy or a gather first waits for the handoff stream, once per new count,
// so steady runs that take no handed-over data pay nothing. The handoff stream is shared by
// all threads: a TensorData wrapped on one thread may be fed on another.
//
// Outgoing: Loom's own work on data it hands out has finished (runs and copies end
// synchronised), so a consumer's stream only waits for the handoff stream, in case the data
// is memory that was handed in and is handed on.
#include <cuda_runtime.h>

#include <algorithm>
#include <iterator>
#include <map>
#include <mutex>
#include <tuple>

#include "backends/cuda/cuda_backend_impl.h"
#include "backends/cuda/cuda_error.h"
#include "backends/cuda/device_guard.h"

namespace loom::cuda {
namespace {

// DLPack's names for CUDA streams: 1 (and 0, which DLPack leaves undefined and torch uses for
// its default stream) the legacy default stream, 2 the per-thread default stream.
cudaStream_t stream_from_dlpack(intptr_t value, const char* what) {
  if (value < 0)
    fail(ErrorKind::value, std::string(what) + ": stream " + std::to_string(value) +
                               " is not a CUDA stream (DLPack: 1 legacy default, 2 per-thread "
                               "default, or a cudaStream_t)");
  if (value == 0 || value == 1) return cudaStreamLegacy;
  if (value == 2) return cudaStreamPerThread;
  return reinterpret_cast<cudaStream_t>(value);
}

// Makes `waiter` wait for the work queued so far on `producer`. Each stream is used with its
// own GPU current, so that the per-thread and legacy handles mean that GPU's streams.
void stream_wait(cudaStream_t waiter, int waiter_device, cudaStream_t producer,
                 int producer_device) {
  cudaEvent_t event = nullptr;
  {
    DeviceGuard guard(producer_device);
    check_cuda(cudaEventCreateWithFlags(&event, cudaEventDisableTiming),
               "cudaEventCreateWithFlags");
    cudaError_t status = cudaEventRecord(event, producer);
    if (status != cudaSuccess) {
      cudaEventDestroy(event);
      fail_cuda(status, "cudaEventRecord (ordering streams at a handoff)");
    }
  }
  DeviceGuard guard(waiter_device);
  cudaError_t status = cudaStreamWaitEvent(waiter, event, 0);
  cudaEventDestroy(event);  // its resources are released once it has completed
  check_cuda(status, "cudaStreamWaitEvent (ordering streams at a handoff)");
}

bool is_capturing(cudaStream_t stream, int device) {
  DeviceGuard guard(device);
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  if (cudaStreamIsCapturing(stream, &status) != cudaSuccess) {
    (void)cudaGetLastError();
    return false;
  }
  return status != cudaStreamCaptureStatusNone;
}

// The handoff count of each source GPU that each Loom stream has waited for. The per-thread
// stream is one per thread and GPU, so its counts are thread-local.
std::mutex g_seen_mutex;
auto* g_seen = new std::map<std::pair<cudaStream_t, int>, uint64_t>();  // (stream, source)
thread_local std::map<std::pair<int, int>, uint64_t> t_seen;            // (GPU, source)

}  // namespace

void wait_for_handoffs_of(int source, cudaStream_t waiter, int waiter_device) {
  CudaBackend* from = existing_backend(source);
  if (!from) return;
  uint64_t count = from->handoff_count();
  if (count == 0) return;
  bool per_thread = waiter == cudaStreamPerThread;
  if (per_thread) {
    if (t_seen[{waiter_device, source}] >= count) return;
  } else {
    std::lock_guard lock(g_seen_mutex);
    auto it = g_seen->find({waiter, source});
    if (it != g_seen->end() && it->second >= count) return;
  }
  // A capture may not wait for work outside it; Loom copies feeds before a capture begins.
  if (is_capturing(waiter, waiter_device)) return;
  // `count` was read before the event is recorded, so every handoff it covers is queued on
  // the handoff stream ahead of the event (a handoff is counted after it is queued).
  stream_wait(waiter, waiter_device, from->handoff(), source);
  if (per_thread) {
    uint64_t& seen = t_seen[{waiter_device, source}];
    seen = std::max(seen, count);
  } else {
    std::lock_guard lock(g_seen_mutex);
    uint64_t& seen = (*g_seen)[{waiter, source}];
    seen = std::max(seen, count);
  }
}

void forget_stream(cudaStream_t stream) {
  std::lock_guard lock(g_seen_mutex);
  for (auto it = g_seen->begin(); it != g_seen->end();)
    it = it->first.first == stream ? g_seen->erase(it) : std::next(it);
}

intptr_t CudaBackend::handoff_stream() const { return reinterpret_cast<intptr_t>(handoff_); }

void CudaBackend::accept_from_stream(intptr_t producer) {
  if (producer != handoff_stream()) {
    cudaStream_t s = stream_from_dlpack(producer, "handing data to Loom");
    // Waiting for a capturing stream would pull the handoff stream into its graph.
    if (s != cudaStreamLegacy && is_capturing(s, index_))
      fail(ErrorKind::unsupported,
           "data handed to Loom from a CUDA stream that is capturing a CUDA graph; run Loom "
           "outside the capture");
    stream_wait(handoff_, index_, s, index_);
  }
  handoffs_.fetch_add(1, std::memory_order_acq_rel);
}

void CudaBackend::release_to_stream(intptr_t consumer) {
  if (consumer == -1) return;
  cudaStream_t s = stream_from_dlpack(consumer, "handing data out of Loom");
  // The consumer may still read the memory on its stream after it has let go of it, when
  // Loom writes it again (a reused output, a variable): see wait_for_handoffs.
  if (s == cudaStreamLegacy) exported_to_legacy_.store(true, std::memory_order_release);
  if (handoff_count() == 0) return;
  // A consumer capturing a CUDA graph reads the data when the graph is launched, later; an
  // event from outside would invalidate its capture. (The legacy stream cannot capture.)
  if (s != cudaStreamLegacy && is_capturing(s, index_)) return;
  stream_wait(s, index_, handoff_, index_);
}

void CudaBackend::wait_for_handoffs(void* stream) {
  auto s = stream ? static_cast<cudaStream_t>(stream) : cudaStreamPerThread;
  for (int source = 0; source < gpu_count(); ++source) wait_for_handoffs_of(source, s, index_);
  // Memory handed out to the legacy default stream (torch's default stream) may still be read
  // there after its tensor was dropped, and Loom may be about to write it again. Loom's
  // streams do not follow the legacy stream by themselves (the per-thread stream does).
  // Streams other than the legacy one are not remembered: Loom cannot know that they live.
  if (s != cudaStreamPerThread && exported_to_legacy_.load(std::memory_order_acquire) &&
      !is_capturing(s, index_))
    stream_wait(s, index_, cudaStreamLegacy, index_);
}

}  // namespace loom::cuda
