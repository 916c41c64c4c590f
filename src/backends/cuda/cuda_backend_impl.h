// The CUDA backend class: memory (stream-ordered pool), copies, streams, CUDA graph capture,
// handoffs with other libraries' streams, and what kernels share per stream (the cuBLASLt
// handle and workspace).
#pragma once

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>

#include "backends/backend.h"
#include "backends/event_timer.h"

namespace loom::cuda {

class CudaBackend final : public Backend, public EventTimer {
 public:
  explicit CudaBackend(int index);
  ~CudaBackend() override;

  Device device() const override { return Device::cuda(index_); }
  void* allocate(size_t bytes) override;
  void release(void* data) override;
  void copy(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes,
            void* stream) override;
  void copy_strided(void* dst, const void* src, size_t element_bytes, const Extents& shape,
                    const Strides& src_strides, void* stream) override;
  void* create_stream() override;
  void destroy_stream(void* stream) override;
  void synchronize(void* stream) override;

  bool supports_graphs() const override { return true; }
  bool begin_capture(void* stream) override;
  std::shared_ptr<void> end_capture(void* stream) override;
  void replay(const std::shared_ptr<void>& graph, void* stream) override;

  void* create_event() override;
  void destroy_event(void* event) noexcept override;
  void record_event(void* event, void* stream) override;
  double elapsed_ms(void* start, void* end) override;

  // Makes this backend's GPU current on the calling thread and leaves it so (cheap when it
  // already is); every other entry point restores the caller's device when it returns.
  void activate() const override;
  int enter_device() const override;
  void restore_device(int previous) const noexcept override;

  intptr_t handoff_stream() const override;
  void accept_from_stream(intptr_t producer) override;
  void release_to_stream(intptr_t consumer) override;
  void wait_for_handoffs(void* stream) override;

  cublasLtHandle_t cublaslt() const { return cublaslt_; }
  // The cuBLASLt workspace of `stream`; made with the stream (for streams this backend did
  // not create, made on first eager use). Size 0 while capturing a stream that has none.
  struct Workspace {
    void* data = nullptr;
    size_t bytes = 0;
  };
  Workspace workspace(cudaStream_t stream);

  // Bytes currently free on the GPU and its total memory (for error messages and benches).
  void memory_info(size_t* free_bytes, size_t* total_bytes) const;

  // Handoffs accepted so far (see accept_from_stream) and the stream they are ordered on.
  uint64_t handoff_count() const { return handoffs_.load(std::memory_order_acquire); }
  cudaStream_t handoff() const { return handoff_; }

 private:
  [[noreturn]] void fail_out_of_memory(size_t bytes, cudaError_t status);

  int index_;
  cudaMemPool_t pool_ = nullptr;
  cublasLtHandle_t cublaslt_ = nullptr;
  // Non-blocking, never given work of its own: producers outside Loom order their work on it
  // and Loom's streams wait for it before they read handed-over memory.
  cudaStream_t handoff_ = nullptr;
  std::atomic<uint64_t> handoffs_{0};
  std::atomic<bool> exported_to_legacy_{false};  // release_to_stream saw the legacy stream
  std::mutex mutex_;
  std::map<cudaStream_t, Workspace> workspaces_;
};

// GPUs the runtime sees, and the backend of GPU `index` when one has been made (null
// otherwise; never makes one).
int gpu_count();
CudaBackend* existing_backend(int index);
// True while the calling thread captures a CUDA graph (cuda_backend.cu).
bool this_thread_captures();

// Handoffs (handoff.cu). Makes `waiter`, a stream of GPU `waiter_device` (or
// cudaStreamPerThread, meant on that GPU), wait for the handoffs of GPU `source` that it has
// not waited for yet; a no-op when there are none, and while `waiter` is capturing.
void wait_for_handoffs_of(int source, cudaStream_t waiter, int waiter_device);
// Drops what is remembered about a stream that is being destroyed.
void forget_stream(cudaStream_t stream);

// The backend a kernel runs on (kernels are only registered on CudaBackend).
inline CudaBackend& cuda_backend_of(const KernelContext& ctx) {
  return static_cast<CudaBackend&>(ctx.backend);
}

}  // namespace loom::cuda
