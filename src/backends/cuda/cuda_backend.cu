// The CUDA backend: a stream-ordered memory pool, copies, streams and CUDA graph capture.
#include <cstdint>
#include <cstdio>
#include <memory>
#include <mutex>
#include <vector>

#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/cuda_backend_impl.h"
#include "backends/cuda/cuda_error.h"
#include "backends/cuda/cuda_kernels.h"

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

// Captures in progress on this thread. Memory released meanwhile is freed once the capture
// ends: a stream-ordered free on the legacy stream would invalidate the capture.
thread_local int t_captures = 0;
thread_local std::vector<void*> t_deferred_frees;

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

Backend& backend(int index) {
  if (index < 0 || index >= device_count())
    fail(ErrorKind::device, "CUDA device " + std::to_string(index) + " requested, but " +
                                std::to_string(device_count()) + " GPU(s) are present");
  static std::mutex mutex;
  // Never destroyed: buffers held by static objects may be released during exit.
  static auto* backends = new std::vector<std::unique_ptr<CudaBackend>>(size_t(device_count()));
  std::lock_guard lock(mutex);
  auto& slot = (*backends)[size_t(index)];
  if (!slot) slot = std::make_unique<CudaBackend>(index);
  return *slot;
}

CudaBackend::CudaBackend(int index) : index_(index) {
  activate();
  check_cuda(cudaDeviceGetDefaultMemPool(&pool_, index_), "cudaDeviceGetDefaultMemPool");
  // Keep freed memory in the pool: steady-state runs then never reach the driver.
  uint64_t keep_all = UINT64_MAX;
  check_cuda(cudaMemPoolSetAttribute(pool_, cudaMemPoolAttrReleaseThreshold, &keep_all),
             "cudaMemPoolSetAttribute");
  check_cublas(cublasLtCreate(&cublaslt_), "cublasLtCreate");
  register_source_kernels(*this);
  register_elementwise_kernels(*this);
  register_unary_kernels(*this);
  register_cast_kernels(*this);
  register_matmul_kernels(*this);
  register_reduce_kernels(*this);
  register_norm_kernels(*this);
  register_shape_kernels(*this);
  register_slice_kernels(*this);
  register_position_kernels(*this);
  register_attention_kernels(*this);
}

CudaBackend::~CudaBackend() {
  for (auto& [stream, ws] : workspaces_) cudaFree(ws.data);
  if (cublaslt_) cublasLtDestroy(cublaslt_);
}

void CudaBackend::activate() const {
  int current = -1;
  if (cudaGetDevice(&current) != cudaSuccess || current != index_)
    check_cuda(cudaSetDevice(index_), "cudaSetDevice(" + std::to_string(index_) + ")");
}

void CudaBackend::memory_info(size_t* free_bytes, size_t* total_bytes) const {
  activate();
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
  if (t_captures > 0)
    fail(ErrorKind::device, "CUDA allocation of " + std::to_string(bytes) +
                                " bytes while a CUDA graph is being captured");
  activate();
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
  if (t_captures > 0) {
    t_deferred_frees.push_back(data);
    return;
  }
  // Runs from destructors: never throws. Errors (the runtime shutting down at exit) are
  // cleared so that they do not surface in an unrelated later call.
  int current = -1;
  if (cudaGetDevice(&current) == cudaSuccess && current != index_) cudaSetDevice(index_);
  // Loom's runs end synchronised, so no stream still uses a buffer when it is released.
  if (cudaFreeAsync(data, cudaStreamPerThread) != cudaSuccess) (void)cudaGetLastError();
}

void CudaBackend::copy(void* dst, Device dst_device, const void* src, Device src_device,
                       size_t bytes, void* stream) {
  if (bytes == 0) return;
  activate();
  auto s = stream ? static_cast<cudaStream_t>(stream) : cudaStreamPerThread;
  if (dst_device.kind == DeviceKind::cuda && src_device.kind == DeviceKind::cuda &&
      dst_device.index != src_device.index) {
    check_cuda(cudaMemcpyPeerAsync(dst, dst_device.index, src, src_device.index, bytes, s),
               "cudaMemcpyPeerAsync " + src_device.str() + " -> " + dst_device.str());
    return;
  }
  check_cuda(cudaMemcpyAsync(dst, src, bytes, copy_kind(dst_device, src_device), s),
             "cudaMemcpyAsync " + src_device.str() + " -> " + dst_device.str() + " of " +
                 std::to_string(bytes) + " bytes");
}

void* CudaBackend::create_stream() {
  activate();
  cudaStream_t s = nullptr;
  // A blocking stream: it orders itself after the legacy stream, where a DLPack producer
  // (torch) makes its work visible to Loom. Loom itself never uses the legacy stream.
  check_cuda(cudaStreamCreate(&s), "cudaStreamCreate");
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
  activate();
  auto s = static_cast<cudaStream_t>(stream);
  if (cudaStreamSynchronize(s) != cudaSuccess) (void)cudaGetLastError();
  {
    std::lock_guard lock(mutex_);
    auto it = workspaces_.find(s);
    if (it != workspaces_.end()) {
      cudaFree(it->second.data);
      workspaces_.erase(it);
    }
  }
  if (cudaStreamDestroy(s) != cudaSuccess) (void)cudaGetLastError();
}

void CudaBackend::synchronize(void* stream) {
  activate();
  check_cuda(
      cudaStreamSynchronize(stream ? static_cast<cudaStream_t>(stream) : cudaStreamPerThread),
      "work on " + device().str() + " (reported at stream synchronisation)");
}

CudaBackend::Workspace CudaBackend::workspace(cudaStream_t stream) {
  std::lock_guard lock(mutex_);
  auto it = workspaces_.find(stream);
  if (it != workspaces_.end()) return it->second;
  if (t_captures > 0) return {};
  Workspace ws;
  if (cudaMalloc(&ws.data, kWorkspaceBytes) != cudaSuccess) {
    (void)cudaGetLastError();
    return {};  // cuBLASLt then picks an algorithm that needs none
  }
  ws.bytes = kWorkspaceBytes;
  workspaces_[stream] = ws;
  return ws;
}

void CudaBackend::begin_capture(void* stream) {
  if (!stream) fail(ErrorKind::device, "CUDA graph capture needs a stream, not the legacy stream");
  activate();
  check_cuda(
      cudaStreamBeginCapture(static_cast<cudaStream_t>(stream), cudaStreamCaptureModeThreadLocal),
      "cudaStreamBeginCapture");
  ++t_captures;
}

std::shared_ptr<void> CudaBackend::end_capture(void* stream) {
  activate();
  auto s = static_cast<cudaStream_t>(stream);
  cudaGraph_t graph = nullptr;
  cudaError_t status = cudaStreamEndCapture(s, &graph);
  if (t_captures > 0) --t_captures;
  if (t_captures == 0) {
    std::vector<void*> frees;
    frees.swap(t_deferred_frees);
    for (void* p : frees) release(p);
  }
  if (status != cudaSuccess) {
    // The capture has ended either way; clear the error so the stream runs eagerly again.
    if (graph) cudaGraphDestroy(graph);
    fail_cuda(status, "CUDA graph capture (cudaStreamEndCapture)");
  }
  if (!graph) fail(ErrorKind::device, "CUDA graph capture produced no graph");
  cudaGraphExec_t exec = nullptr;
  status = cudaGraphInstantiate(&exec, graph, 0);
  cudaGraphDestroy(graph);
  if (status != cudaSuccess) fail_cuda(status, "cudaGraphInstantiate");
  return std::shared_ptr<void>(static_cast<void*>(exec), [](void* e) {
    if (cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(e)) != cudaSuccess)
      (void)cudaGetLastError();
  });
}

void CudaBackend::replay(const std::shared_ptr<void>& graph, void* stream) {
  if (!graph) fail(ErrorKind::internal, "CUDA graph replay of an empty graph");
  activate();
  check_cuda(
      cudaGraphLaunch(static_cast<cudaGraphExec_t>(graph.get()), static_cast<cudaStream_t>(stream)),
      "cudaGraphLaunch");
}

}  // namespace loom::cuda
