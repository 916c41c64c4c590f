// A thin wrapper over cuBLASLt: one column-major GEMM description, the plan (descriptors
// and the heuristic's candidate algorithms, each with the workspace it needs) made from it
// once, and its launch with a chosen algorithm. The CUDA matmul kernel offers the candidates
// as its tactics; the runtime times them and places the chosen one's workspace in the arena.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <array>
#include <cstdint>
#include <string>

#include "loom/dtype.h"

namespace loom::cuda {

// D[m, n] = op(A)[m, k] * op(B)[k, n], column-major, `batch` matrices `stride_*` apart.
struct GemmDesc {
  cudaDataType_t dtype = CUDA_R_32F;
  cublasComputeType_t compute = CUBLAS_COMPUTE_32F;
  bool trans_a = false, trans_b = false;
  uint64_t m = 0, n = 0, k = 0;
  int64_t lda = 0, ldb = 0, ldc = 0;
  int32_t batch = 1;
  int64_t stride_a = 0, stride_b = 0, stride_c = 0;
  size_t workspace_bytes = 0;  // the most workspace any candidate algorithm may ask for
  // Alignment (bytes, power of two, <= 256) every pointer of A, B and C is known to have:
  // cuBLASLt otherwise assumes 256 and may pick an algorithm the data does not fit.
  uint32_t align_a = 256, align_b = 256, align_c = 256;
  // Adds a bias vector of length m (one value per row of column-major D) in the epilogue.
  bool bias = false;
  // D is f32 whatever A and B are (f16 or bf16 inputs, f32 accumulation and output).
  bool d_f32 = false;

  bool operator==(const GemmDesc&) const = default;
  std::string str() const;
};

// cuBLAS's type of a float dtype; throws loom::Error(dtype) for others.
cudaDataType_t cuda_dtype(DType dtype);
// LOOM_CUDA_TF32=1: f32 GEMMs may use TF32 tensor cores.
bool tf32_enabled();

// The largest power of two (<= 256) dividing every one of `values` (addresses, byte strides).
uint32_t common_alignment(std::initializer_list<uint64_t> values);

class LtGemm {
 public:
  // Builds the descriptors and asks the heuristic for its best algorithm; throws
  // loom::Error(unsupported) when cuBLASLt has none for the description.
  LtGemm(cublasLtHandle_t handle, const GemmDesc& desc);
  ~LtGemm();
  LtGemm(const LtGemm&) = delete;
  LtGemm& operator=(const LtGemm&) = delete;

  const GemmDesc& desc() const { return desc_; }
  // The heuristic's usable algorithms, best first by its estimate.
  size_t algorithms() const { return candidate_count_; }
  // Workspace bytes algorithm i needs (at most desc().workspace_bytes).
  size_t workspace_bytes(size_t i) const { return candidate_workspace_.at(i); }
  // A name that identifies algorithm i across processes: its id and configuration
  // (tile, stages, split-k, reduction, swizzle, custom option).
  std::string algorithm_name(size_t i) const;
  // Enqueues D = A * B on `stream` with algorithm `algo` (no allocation, no synchronisation,
  // no message built unless a call fails: capturable). `workspace` holds at least
  // workspace_bytes(algo) bytes. `bias` is used (and required) when the description has one.
  void run(cublasLtHandle_t handle, const void* a, const void* b, void* d, void* workspace,
           size_t workspace_bytes, cudaStream_t stream, const char* what,
           const void* bias = nullptr, size_t algo = 0) const;

 private:
  void destroy();

  GemmDesc desc_;
  cublasLtMatmulDesc_t op_ = nullptr;
  cublasLtMatrixLayout_t a_ = nullptr, b_ = nullptr, c_ = nullptr;
  // A fixed array, not a vector: nvcc 13.0's front end crashes constructing vectors of this
  // type under C++20.
  std::array<cublasLtMatmulAlgo_t, 8> candidates_{};
  std::array<size_t, 8> candidate_workspace_{};
  size_t candidate_count_ = 0;
};

}  // namespace loom::cuda
