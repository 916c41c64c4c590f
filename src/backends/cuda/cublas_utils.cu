// cuBLASLt plans: descriptors, heuristic choice and launch, every call checked.
#include <algorithm>
#include <map>
#include <mutex>
#include <utility>

#include "backends/cuda/cublas_utils.h"
#include "backends/cuda/cuda_error.h"

namespace loom::cuda {

std::string GemmDesc::str() const {
  return "m=" + std::to_string(m) + " n=" + std::to_string(n) + " k=" + std::to_string(k) +
         " batch=" + std::to_string(batch) + (trans_a ? " A^T" : "") + (trans_b ? " B^T" : "") +
         " lda=" + std::to_string(lda) + " ldb=" + std::to_string(ldb) +
         " ldc=" + std::to_string(ldc) + " align=" + std::to_string(align_a) + "/" +
         std::to_string(align_b) + "/" + std::to_string(align_c) + (bias ? " +bias" : "");
}

uint32_t common_alignment(std::initializer_list<uint64_t> values) {
  uint64_t align = 256;
  for (uint64_t v : values)
    if (v) align = std::min<uint64_t>(align, v & (~v + 1));
  return uint32_t(align);
}

namespace {

// The fastest candidate per GEMM description, shared by every plan in the process.
struct TuningCache {
  std::mutex mutex;
  std::map<std::string, size_t> best;
};

TuningCache& tuning_cache() {
  static TuningCache cache;
  return cache;
}

cublasLtMatrixLayout_t make_layout(cudaDataType_t dtype, uint64_t rows, uint64_t cols, int64_t ld,
                                   int32_t batch, int64_t stride) {
  cublasLtMatrixLayout_t layout = nullptr;
  check_cublas(cublasLtMatrixLayoutCreate(&layout, dtype, rows, cols, ld),
               "cublasLtMatrixLayoutCreate");
  if (batch > 1) {
    check_cublas(cublasLtMatrixLayoutSetAttribute(layout, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT,
                                                  &batch, sizeof batch),
                 "cublasLtMatrixLayoutSetAttribute(batch count)");
    check_cublas(cublasLtMatrixLayoutSetAttribute(
                     layout, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof stride),
                 "cublasLtMatrixLayoutSetAttribute(batch stride)");
  }
  return layout;
}

}  // namespace

LtGemm::LtGemm(cublasLtHandle_t handle, const GemmDesc& d) : desc_(d) {
  try {
    check_cublas(cublasLtMatmulDescCreate(&op_, d.compute, CUDA_R_32F), "cublasLtMatmulDescCreate");
    cublasOperation_t ta = d.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasOperation_t tb = d.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    check_cublas(cublasLtMatmulDescSetAttribute(op_, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta),
                 "cublasLtMatmulDescSetAttribute(transa)");
    check_cublas(cublasLtMatmulDescSetAttribute(op_, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb),
                 "cublasLtMatmulDescSetAttribute(transb)");
    if (d.bias) {
      cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_BIAS;
      check_cublas(cublasLtMatmulDescSetAttribute(op_, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue,
                                                  sizeof epilogue),
                   "cublasLtMatmulDescSetAttribute(epilogue)");
      cudaDataType_t bias_type = d.dtype;
      check_cublas(cublasLtMatmulDescSetAttribute(op_, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE,
                                                  &bias_type, sizeof bias_type),
                   "cublasLtMatmulDescSetAttribute(bias type)");
    }
    // Stored shapes: op(A) is m x k, so A itself is k x m when transposed.
    a_ = make_layout(d.dtype, d.trans_a ? d.k : d.m, d.trans_a ? d.m : d.k, d.lda, d.batch,
                     d.stride_a);
    b_ = make_layout(d.dtype, d.trans_b ? d.n : d.k, d.trans_b ? d.k : d.n, d.ldb, d.batch,
                     d.stride_b);
    c_ = make_layout(d.dtype, d.m, d.n, d.ldc, d.batch, d.stride_c);

    cublasLtMatmulPreference_t pref = nullptr;
    check_cublas(cublasLtMatmulPreferenceCreate(&pref), "cublasLtMatmulPreferenceCreate");
    uint64_t ws = d.workspace_bytes;
    cublasStatus_t status = cublasLtMatmulPreferenceSetAttribute(
        pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
    // Several candidates, so that tune() can time them; the first is the heuristic's pick.
    constexpr int kCandidates = int(std::tuple_size_v<decltype(candidates_)>);
    cublasLtMatmulHeuristicResult_t results[kCandidates] = {};
    int found = 0;
    const std::pair<cublasLtMatmulPreferenceAttributes_t, uint32_t> alignments[] = {
        {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, d.align_a},
        {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, d.align_b},
        {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, d.align_c},
        {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, d.align_c}};
    for (const auto& [attr, value] : alignments)
      if (status == CUBLAS_STATUS_SUCCESS)
        status = cublasLtMatmulPreferenceSetAttribute(pref, attr, &value, sizeof value);
    if (status == CUBLAS_STATUS_SUCCESS)
      status = cublasLtMatmulAlgoGetHeuristic(handle, op_, a_, b_, c_, c_, pref, kCandidates,
                                              results, &found);
    cublasLtMatmulPreferenceDestroy(pref);
    check_cublas(status, "cublasLtMatmulAlgoGetHeuristic for " + d.str());
    if (found == 0) fail(ErrorKind::unsupported, "cuBLASLt has no algorithm for matmul " + d.str());
    for (int i = 0; i < found; ++i)
      if (results[i].state == CUBLAS_STATUS_SUCCESS)
        candidates_[candidate_count_++] = results[i].algo;
    if (candidate_count_ == 0)
      fail(ErrorKind::unsupported, "cuBLASLt has no usable algorithm for matmul " + d.str());
    algo_ = candidates_[0];
  } catch (...) {
    destroy();
    throw;
  }
}

LtGemm::~LtGemm() { destroy(); }

void LtGemm::tune(cublasLtHandle_t handle, const void* a, const void* b, void* d, void* workspace,
                  cudaStream_t stream, const void* bias) {
  if (candidate_count_ < 2) return;
  cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
  if (cudaStreamIsCapturing(stream, &capture) != cudaSuccess ||
      capture != cudaStreamCaptureStatusNone) {
    (void)cudaGetLastError();
    return;
  }
  TuningCache& cache = tuning_cache();
  const std::string key = desc_.str() + " type=" + std::to_string(int(desc_.dtype)) +
                          " compute=" + std::to_string(int(desc_.compute)) +
                          " ws=" + std::to_string(desc_.workspace_bytes);
  {
    std::lock_guard<std::mutex> lock(cache.mutex);
    auto it = cache.best.find(key);
    if (it != cache.best.end() && it->second < candidate_count_) {
      algo_ = candidates_[it->second];
      return;
    }
  }
  if (desc_.bias)
    check_cublas(
        cublasLtMatmulDescSetAttribute(op_, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias),
        "cublasLtMatmulDescSetAttribute(bias pointer)");
  cudaEvent_t start = nullptr, stop = nullptr;
  check_cuda(cudaEventCreate(&start), "cudaEventCreate");
  if (cudaEventCreate(&stop) != cudaSuccess) {
    cudaEventDestroy(start);
    fail_cuda(cudaGetLastError(), "cudaEventCreate");
  }
  const float alpha = 1.f, beta = 0.f;
  size_t best = 0;
  float best_ms = -1.f;
  for (size_t i = 0; i < candidate_count_; ++i) {
    const cublasLtMatmulAlgo_t* algo = &candidates_[i];
    if (cublasLtMatmul(handle, op_, &alpha, a, a_, b, b_, &beta, d, c_, d, c_, algo, workspace,
                       desc_.workspace_bytes, stream) != CUBLAS_STATUS_SUCCESS)
      continue;  // warm-up; an algorithm that fails is skipped
    cudaEventRecord(start, stream);
    constexpr int kRepeats = 3;
    bool ok = true;
    for (int r = 0; r < kRepeats && ok; ++r)
      ok = cublasLtMatmul(handle, op_, &alpha, a, a_, b, b_, &beta, d, c_, d, c_, algo, workspace,
                          desc_.workspace_bytes, stream) == CUBLAS_STATUS_SUCCESS;
    cudaEventRecord(stop, stream);
    float ms = 0.f;
    if (!ok || cudaEventSynchronize(stop) != cudaSuccess ||
        cudaEventElapsedTime(&ms, start, stop) != cudaSuccess) {
      (void)cudaGetLastError();
      continue;
    }
    if (best_ms < 0.f || ms < best_ms) {
      best_ms = ms;
      best = i;
    }
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  algo_ = candidates_[best];
  std::lock_guard<std::mutex> lock(cache.mutex);
  cache.best[key] = best;
}

void LtGemm::destroy() {
  if (c_) cublasLtMatrixLayoutDestroy(c_);
  if (b_) cublasLtMatrixLayoutDestroy(b_);
  if (a_) cublasLtMatrixLayoutDestroy(a_);
  if (op_) cublasLtMatmulDescDestroy(op_);
  c_ = b_ = a_ = nullptr;
  op_ = nullptr;
}

void LtGemm::run(cublasLtHandle_t handle, const void* a, const void* b, void* d, void* workspace,
                 cudaStream_t stream, const char* what, const void* bias) const {
  const float alpha = 1.f, beta = 0.f;
  if (desc_.bias) {
    if (!bias) fail(ErrorKind::internal, std::string(what) + ": bias pointer missing");
    // Host-side state of the descriptor, read when the call is enqueued (so capturable).
    check_cublas(
        cublasLtMatmulDescSetAttribute(op_, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias),
        "cublasLtMatmulDescSetAttribute(bias pointer)");
  }
  check_cublas(cublasLtMatmul(handle, op_, &alpha, a, a_, b, b_, &beta, d, c_, d, c_, &algo_,
                              workspace, desc_.workspace_bytes, stream),
               std::string("cublasLtMatmul (") + what + ", " + desc_.str() + ")");
}

}  // namespace loom::cuda
