// The CUDA backend: a stream-ordered memory pool, copies, streams and CUDA graph capture.
// Every entry point makes its GPU current for the call only (DeviceGuard), so the calling
// thread keeps its own current device.
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/cuda_backend_impl.h"
#include "backends/cuda/cuda_error.h"
#include "backends/cuda/cuda_kernels.h"
#include "backends/cuda/device_guard.h"
#include "backends/cuda/strided_copy.h"

namespace loom::cuda {

namespace {

// cuBLASLt's recommended workspace on Hopper.
constexpr size_t kWorkspaceBytes = size_t(32) << 20;

int device_count() {
  static const int count = [] {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
      (void)cudaGetLastError();
      n = 0;
    }
    return n;
  }();
  return count;
}

// Streams this thread is capturing. Memory released meanwhile is freed once the last
// capture ends: a free is not an operation a capture may contain.
thread_local std::vector<cudaStream_t> t_capturing;
thread_local std::vector<std::pair<CudaBackend*, void*>> t_deferred_frees;

// Ends whatever capture `stream` is in (active or invalidated), drops the partial graph and
// clears the error the failed capture left, so the stream runs eagerly again.
void abandon_capture(cudaStream_t stream) noexcept {
  for (int attempt = 0; attempt < 2; ++attempt) {
    cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
    if (cudaStreamIsCapturing(stream, &status) != cudaSuccess) (void)cudaGetLastError();
    if (status == cudaStreamCaptureStatusNone) break;
    cudaGraph_t graph = nullptr;
    if (cudaStreamEndCapture(stream, &graph) != cudaSuccess) (void)cudaGetLastError();
    if (graph) cudaGraphDestroy(graph);
  }
  (void)cudaGetLastError();
}

// Forgets `stream` as captured by this thread; frees what was deferred once none is left.
void capture_ended(cudaStream_t stream) {
  auto it = std::find(t_capturing.begin(), t_capturing.end(), stream);
  if (it == t_capturing.end()) return;
  t_capturing.erase(it);
  if (!t_capturing.empty()) return;
  std::vector<std::pair<CudaBackend*, void*>> frees;
  frees.swap(t_deferred_frees);
  for (auto [owner, p] : frees) owner->release(p);
}

std::string gib(size_t bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.2f GiB", double(bytes) / double(size_t(1) << 30));
  return text;
}

cudaMemcpyKind copy_kind(Device dst, Device src) {
  bool dst_host = dst.kind == DeviceKind::cpu, src_host = src.kind == DeviceKind::cpu;
  if (dst_host && src_host) return cudaMemcpyHostToHost;
  if (dst_host) return cudaMemcpyDeviceToHost;
  if (src_host) return cudaMemcpyHostToDevice;
  return cudaMemcpyDeviceToDevice;
}

}  // namespace

bool device_present() { return device_count() > 0; }
int gpu_count() { return device_count(); }
bool this_thread_captures() { return !t_capturing.empty(); }

// One slot per GPU, published once made; never destroyed, since buffers held by static
// objects may be released during exit.
static std::atomic<CudaBackend*>* backend_slots() {
  static auto* slots = new std::atomic<CudaBackend*>[size_t(std::max(device_count(), 1))]();
  return slots;
}

CudaBackend* existing_backend(int index) {
  if (index < 0 || index >= device_count()) return nullptr;
  return backend_slots()[index].load(std::memory_order_acquire);
}

Backend& backend(int index) {
  if (index < 0 || index >= device_count())
    fail(ErrorKind::device, "CUDA device " + std::to_string(index) + " requested, but " +
                                std::to_string(device_count()) + " GPU(s) are present");
  if (CudaBackend* made = existing_backend(index)) return *made;
  static std::mutex mutex;
  std::lock_guard lock(mutex);
  std::atomic<CudaBackend*>& slot = backend_slots()[index];
  if (!slot.load(std::memory_order_acquire))
    slot.store(new CudaBackend(index), std::memory_order_release);
  return *slot.load(std::memory_order_acquire);
}

int current_device() {
  int current = 0;
  check_cuda(cudaGetDevice(&current), "cudaGetDevice");
  return current;
}

void set_current_device(int index) {
  check_cuda(cudaSetDevice(index), [&] { return "cudaSetDevice(" + std::to_string(index) + ")"; });
}

CudaBackend::CudaBackend(int index) : index_(index) {
  DeviceGuard guard(index_);
  check_cuda(cudaDeviceGetDefaultMemPool(&pool_, index_), "cudaDeviceGetDefaultMemPool");
  // Keep freed memory in the pool: steady-state runs then never reach the driver.
  uint64_t keep_all = UINT64_MAX;
  check_cuda(cudaMemPoolSetAttribute(pool_, cudaMemPoolAttrReleaseThreshold, &keep_all),
             "cudaMemPoolSetAttribute");
  check_cublas(cublasLtCreate(&cublaslt_), "cublasLtCreate");
  check_cuda(cudaStreamCreateWithFlags(&handoff_, cudaStreamNonBlocking),
             "cudaStreamCreateWithFlags (handoff stream)");
  register_kernels(*this);
}

CudaBackend::~CudaBackend() {
  DeviceGuard guard(index_, std::nothrow);
  for (auto& [stream, ws] : workspaces_) cudaFree(ws.data);
  if (handoff_) cudaStreamDestroy(handoff_);
  if (cublaslt_) cublasLtDestroy(cublaslt_);
}

void CudaBackend::activate() const {
  int current = -1;
  if (cudaGetDevice(&current) != cudaSuccess || current != index_)
    check_cuda(cudaSetDevice(index_),
               [&] { return "cudaSetDevice(" + std::to_string(index_) + ")"; });
}

int CudaBackend::enter_device() const { return cuda::enter_device(index_); }

void CudaBackend::restore_device(int previous) const noexcept { cuda::restore_device(previous); }

void CudaBackend::memory_info(size_t* free_bytes, size_t* total_bytes) const {
  DeviceGuard guard(index_);
  check_cuda(cudaMemGetInfo(free_bytes, total_bytes), "cudaMemGetInfo");
}

void CudaBackend::fail_out_of_memory(size_t bytes, cudaError_t status) {
  (void)cudaGetLastError();
  size_t free_bytes = 0, total_bytes = 0;
  if (cudaMemGetInfo(&free_bytes, &total_bytes) != cudaSuccess) (void)cudaGetLastError();
  fail(ErrorKind::device, "CUDA out of memory on " + device().str() + ": requested " +
                              std::to_string(bytes) + " bytes (" + gib(bytes) + "), " +
                              gib(free_bytes) + " free of " + gib(total_bytes) + " (" +
                              cudaGetErrorName(status) + ")");
}

void* CudaBackend::allocate(size_t bytes) {
  if (this_thread_captures())
    fail(ErrorKind::device, "CUDA allocation of " + std::to_string(bytes) +
                                " bytes while a CUDA graph is being captured");
  DeviceGuard guard(index_);
  void* data = nullptr;
  // On this thread's default stream, never the legacy stream: a legacy-stream call from any
  // thread would invalidate a CUDA graph that another thread is capturing. The allocation
  // is made complete before any other stream may use the memory.
  cudaError_t status = cudaMallocFromPoolAsync(&data, bytes, pool_, cudaStreamPerThread);
  if (status != cudaSuccess) {
    // Give cached blocks back to the driver once, then try again.
    (void)cudaGetLastError();
    check_cuda(cudaStreamSynchronize(cudaStreamPerThread), "synchronising before a pool trim");
    check_cuda(cudaMemPoolTrimTo(pool_, 0), "cudaMemPoolTrimTo");
    status = cudaMallocFromPoolAsync(&data, bytes, pool_, cudaStreamPerThread);
  }
  if (status != cudaSuccess) fail_out_of_memory(bytes, status);
  check_cuda(cudaStreamSynchronize(cudaStreamPerThread),
             "allocation of " + std::to_string(bytes) + " bytes");
  return data;
}

void CudaBackend::release(void* data) {
  if (!data) return;
  if (this_thread_captures()) {
    t_deferred_frees.emplace_back(this, data);
    return;
  }
  // Runs from destructors: never throws. Errors (the runtime shutting down at exit) are
  // cleared so that they do not surface in an unrelated later call.
  DeviceGuard guard(index_, std::nothrow);
  // Loom's runs end synchronised, so no stream still uses a buffer when it is released.
  if (cudaFreeAsync(data, cudaStreamPerThread) != cudaSuccess) (void)cudaGetLastError();
}

void CudaBackend::copy(void* dst, Device dst_device, const void* src, Device src_device,
                       size_t bytes, void* stream) {
  if (bytes == 0) return;
  DeviceGuard guard(index_);
  auto s = stream ? static_cast<cudaStream_t>(stream) : cudaStreamPerThread;
  // Device memory another library handed over (a DLPack feed) is read only after the work
  // that wrote it; nothing to do when no handoff is pending.
  if (src_device.kind == DeviceKind::cuda) wait_for_handoffs_of(src_device.index, s, index_);
  if (dst_device.kind == DeviceKind::cuda && dst_device != src_device)
    wait_for_handoffs_of(dst_device.index, s, index_);
  if (dst_device.kind == DeviceKind::cuda && src_device.kind == DeviceKind::cuda &&
      dst_device.index != src_device.index) {
    check_cuda(cudaMemcpyPeerAsync(dst, dst_device.index, src, src_device.index, bytes, s), [&] {
      return "cudaMemcpyPeerAsync " + src_device.str() + " -> " + dst_device.str();
    });
    return;
  }
  check_cuda(cudaMemcpyAsync(dst, src, bytes, copy_kind(dst_device, src_device), s), [&] {
    return "cudaMemcpyAsync " + src_device.str() + " -> " + dst_device.str() + " of " +
           std::to_string(bytes) + " bytes";
  });
}

void CudaBackend::copy_strided(void* dst, const void* src, size_t element_bytes,
                               const Extents& shape, const Strides& src_strides, void* stream) {
  if (shape.size() != src_strides.size())
    fail(ErrorKind::internal, "copy_strided: " + std::to_string(src_strides.size()) +
                                  " strides for shape " + to_string(shape));
  if (numel(shape) == 0) return;
  DeviceGuard guard(index_);
  auto s = stream ? static_cast<cudaStream_t>(stream) : cudaStreamPerThread;
  wait_for_handoffs_of(index_, s, index_);
  // The kernel indexes kMaxDims dims; a view with more (after size-one dims are dropped) is
  // gathered one outer index at a time.
  int64_t kept = std::count_if(shape.begin(), shape.end(), [](int64_t e) { return e != 1; });
  if (kept > kMaxDims) {
    Extents inner(shape.begin() + 1, shape.end());
    Strides inner_strides(src_strides.begin() + 1, src_strides.end());
    size_t inner_bytes = size_t(numel(inner)) * element_bytes;
    for (int64_t i = 0; i < shape[0]; ++i)
      copy_strided(static_cast<char*>(dst) + size_t(i) * inner_bytes,
                   static_cast<const char*>(src) + i * src_strides[0] * int64_t(element_bytes),
                   element_bytes, inner, inner_strides, stream);
    return;
  }
  strided_copy(dst, src, element_bytes, shape, contiguous_strides(shape), src_strides, s,
               "strided_copy (gathering a strided view)");
}

void* CudaBackend::create_stream() {
  DeviceGuard guard(index_);
  cudaStream_t s = nullptr;
  // Non-blocking: no implicit ordering with the legacy default stream, so that another
  // thread's use of that stream (PyTorch's default stream) neither waits for Loom's work nor
  // joins, and so invalidates, a CUDA graph Loom is capturing on this stream. Data from
  // other libraries is ordered explicitly instead (handoffs: see accept_from_stream).
  check_cuda(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
  Workspace ws;
  cudaError_t status = cudaMalloc(&ws.data, kWorkspaceBytes);
  if (status != cudaSuccess) {
    cudaStreamDestroy(s);
    if (status == cudaErrorMemoryAllocation) fail_out_of_memory(kWorkspaceBytes, status);
    fail_cuda(status, "cudaMalloc of the cuBLASLt workspace");
  }
  ws.bytes = kWorkspaceBytes;
  std::lock_guard lock(mutex_);
  workspaces_[s] = ws;
  return s;
}

void CudaBackend::destroy_stream(void* stream) {
  if (!stream) return;
  DeviceGuard guard(index_, std::nothrow);
  auto s = static_cast<cudaStream_t>(stream);
  abandon_capture(s);
  capture_ended(s);
  if (cudaStreamSynchronize(s) != cudaSuccess) (void)cudaGetLastError();
  {
    std::lock_guard lock(mutex_);
    auto it = workspaces_.find(s);
    if (it != workspaces_.end()) {
      cudaFree(it->second.data);
      workspaces_.erase(it);
    }
  }
  forget_stream(s);
  if (cudaStreamDestroy(s) != cudaSuccess) (void)cudaGetLastError();
}

void CudaBackend::synchronize(void* stream) {
  DeviceGuard guard(index_);
  check_cuda(
      cudaStreamSynchronize(stream ? static_cast<cudaStream_t>(stream) : cudaStreamPerThread),
      [&] { return "work on " + device().str() + " (reported at stream synchronisation)"; });
}

void* CudaBackend::create_event() {
  DeviceGuard guard(index_);
  cudaEvent_t event = nullptr;
  check_cuda(cudaEventCreate(&event), [] { return std::string("creating a timing event"); });
  return event;
}

void CudaBackend::destroy_event(void* event) noexcept {
  if (!event) return;
  DeviceGuard guard(index_, std::nothrow);
  cudaEventDestroy(static_cast<cudaEvent_t>(event));
}

void CudaBackend::record_event(void* event, void* stream) {
  DeviceGuard guard(index_);
  check_cuda(cudaEventRecord(static_cast<cudaEvent_t>(event),
                             stream ? static_cast<cudaStream_t>(stream) : cudaStreamPerThread),
             [] { return std::string("recording a timing event"); });
}

double CudaBackend::elapsed_ms(void* start, void* end) {
  DeviceGuard guard(index_);
  float ms = 0;
  check_cuda(
      cudaEventElapsedTime(&ms, static_cast<cudaEvent_t>(start), static_cast<cudaEvent_t>(end)),
      [] { return std::string("reading a timing event"); });
  return ms;
}

CudaBackend::Workspace CudaBackend::workspace(cudaStream_t stream) {
  std::lock_guard lock(mutex_);
  auto it = workspaces_.find(stream);
  if (it != workspaces_.end()) return it->second;
  if (this_thread_captures()) return {};
  DeviceGuard guard(index_);
  Workspace ws;
  if (cudaMalloc(&ws.data, kWorkspaceBytes) != cudaSuccess) {
    (void)cudaGetLastError();
    return {};  // cuBLASLt then picks an algorithm that needs none
  }
  ws.bytes = kWorkspaceBytes;
  workspaces_[stream] = ws;
  return ws;
}

bool CudaBackend::begin_capture(void* stream) {
  if (!stream) return false;  // never the legacy stream
  DeviceGuard guard(index_, std::nothrow);
  auto s = static_cast<cudaStream_t>(stream);
  // A capture left open by a caller that never ended it is ended here. A stale error from
  // an earlier, recovered failure is cleared, or the first launch check would report it.
  abandon_capture(s);
  capture_ended(s);
  // Thread-local mode: only this thread's unsafe calls (an allocation, a synchronisation)
  // fail, and fail the capture, which then falls back to eager. Global mode would also make
  // such calls on every other thread fail while this capture lasts (PyTorch's caching
  // allocator, another executable's run), and relaxed mode would let this thread's own
  // mistakes through silently. Other threads' use of the legacy default stream cannot touch
  // the capture at all, because Loom's streams are non-blocking (create_stream).
  if (cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal) != cudaSuccess) {
    abandon_capture(s);
    return false;
  }
  t_capturing.push_back(s);
  return true;
}

std::shared_ptr<void> CudaBackend::end_capture(void* stream) {
  if (!stream) return nullptr;
  DeviceGuard guard(index_, std::nothrow);
  auto s = static_cast<cudaStream_t>(stream);
  cudaGraph_t graph = nullptr;
  // Ends the capture even when it was invalidated (a launch that failed or was refused while
  // capturing); then no graph comes back. The stream is left out of capture mode with no
  // error pending either way, and the caller runs its steps eagerly.
  cudaError_t status = cudaStreamEndCapture(s, &graph);
  abandon_capture(s);
  capture_ended(s);
  if (status != cudaSuccess || !graph) {
    if (graph) cudaGraphDestroy(graph);
    return nullptr;
  }
  cudaGraphExec_t exec = nullptr;
  status = cudaGraphInstantiate(&exec, graph, 0);
  cudaGraphDestroy(graph);
  if (status != cudaSuccess || !exec) {
    (void)cudaGetLastError();
    return nullptr;
  }
  return std::shared_ptr<void>(static_cast<void*>(exec), [](void* e) {
    if (cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(e)) != cudaSuccess)
      (void)cudaGetLastError();
  });
}

void CudaBackend::replay(const std::shared_ptr<void>& graph, void* stream) {
  if (!graph) fail(ErrorKind::internal, "CUDA graph replay of an empty graph");
  DeviceGuard guard(index_);
  check_cuda(
      cudaGraphLaunch(static_cast<cudaGraphExec_t>(graph.get()), static_cast<cudaStream_t>(stream)),
      "cudaGraphLaunch");
}

}  // namespace loom::cuda
