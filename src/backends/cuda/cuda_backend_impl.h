// The CUDA backend class: memory (stream-ordered pool), copies, streams, CUDA graph capture,
// and what kernels share per stream (the cuBLASLt handle and workspace).
#pragma once

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <map>
#include <mutex>

#include "backends/backend.h"

namespace loom::cuda {

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int index);
  ~CudaBackend() override;

  Device device() const override { return Device::cuda(index_); }
  void* allocate(size_t bytes) override;
  void release(void* data) override;
  void copy(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes,
            void* stream) override;
  void* create_stream() override;
  void destroy_stream(void* stream) override;
  void synchronize(void* stream) override;

  bool supports_graphs() const override { return true; }
  void begin_capture(void* stream) override;
  std::shared_ptr<void> end_capture(void* stream) override;
  void replay(const std::shared_ptr<void>& graph, void* stream) override;

  // Makes this backend's GPU current on the calling thread (cheap when it already is).
  void activate() const override;
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

 private:
  [[noreturn]] void fail_out_of_memory(size_t bytes, cudaError_t status);

  int index_;
  cudaMemPool_t pool_ = nullptr;
  cublasLtHandle_t cublaslt_ = nullptr;
  std::mutex mutex_;
  std::map<cudaStream_t, Workspace> workspaces_;
};

// The backend a kernel runs on (kernels are only registered on CudaBackend).
inline CudaBackend& cuda_backend_of(const KernelContext& ctx) {
  return static_cast<CudaBackend&>(ctx.backend);
}

}  // namespace loom::cuda
