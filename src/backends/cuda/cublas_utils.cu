// cuBLASLt plans: descriptors, heuristic choice and launch, every call checked.
#include <algorithm>
#include <cstdlib>
#include <utility>

#include "backends/cuda/cublas_utils.h"
#include "backends/cuda/cuda_error.h"

namespace loom::cuda {

std::string GemmDesc::str() const {
  return "m=" + std::to_string(m) + " n=" + std::to_string(n) + " k=" + std::to_string(k) +
         " batch=" + std::to_string(batch) + (trans_a ? " A^T" : "") + (trans_b ? " B^T" : "") +
         " lda=" + std::to_string(lda) + " ldb=" + std::to_string(ldb) +
         " ldc=" + std::to_string(ldc) + " align=" + std::to_string(align_a) + "/" +
         std::to_string(align_b) + "/" + std::to_string(align_c) + (bias ? " +bias" : "") +
         (d_f32 ? " D:f32" : "");
}

uint32_t common_alignment(std::initializer_list<uint64_t> values) {
  uint64_t align = 256;
  for (uint64_t v : values)
    if (v) align = std::min<uint64_t>(align, v & (~v + 1));
  return uint32_t(align);
}

namespace {

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
    c_ = make_layout(d.d_f32 ? CUDA_R_32F : d.dtype, d.m, d.n, d.ldc, d.batch, d.stride_c);

    cublasLtMatmulPreference_t pref = nullptr;
    check_cublas(cublasLtMatmulPreferenceCreate(&pref), "cublasLtMatmulPreferenceCreate");
    uint64_t ws = d.workspace_bytes;
    cublasStatus_t status = cublasLtMatmulPreferenceSetAttribute(
        pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
    // Several candidates, offered as tactics; the first is the heuristic's pick.
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
      if (results[i].state == CUBLAS_STATUS_SUCCESS && results[i].workspaceSize <= ws) {
        candidate_workspace_[candidate_count_] = results[i].workspaceSize;
        candidates_[candidate_count_++] = results[i].algo;
      }
    if (candidate_count_ == 0)
      fail(ErrorKind::unsupported, "cuBLASLt has no usable algorithm for matmul " + d.str());
  } catch (...) {
    destroy();
    throw;
  }
}

LtGemm::~LtGemm() { destroy(); }

std::string LtGemm::algorithm_name(size_t i) const {
  const cublasLtMatmulAlgo_t& algo = candidates_.at(i);
  auto config = [&](cublasLtMatmulAlgoConfigAttributes_t attr) -> long long {
    uint32_t value = 0;  // every attribute read here is 32 bits wide
    size_t written = 0;
    if (cublasLtMatmulAlgoConfigGetAttribute(&algo, attr, &value, sizeof value, &written) !=
        CUBLAS_STATUS_SUCCESS)
      return -1;
    return value;
  };
  return "algo" + std::to_string(config(CUBLASLT_ALGO_CONFIG_ID)) + ".t" +
         std::to_string(config(CUBLASLT_ALGO_CONFIG_TILE_ID)) + ".s" +
         std::to_string(config(CUBLASLT_ALGO_CONFIG_STAGES_ID)) + ".k" +
         std::to_string(config(CUBLASLT_ALGO_CONFIG_SPLITK_NUM)) + ".r" +
         std::to_string(config(CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME)) + ".w" +
         std::to_string(config(CUBLASLT_ALGO_CONFIG_CTA_SWIZZLING)) + ".c" +
         std::to_string(config(CUBLASLT_ALGO_CONFIG_CUSTOM_OPTION));
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
                 size_t workspace_bytes, cudaStream_t stream, const char* what, const void* bias,
                 size_t algo) const {
  const float alpha = 1.f, beta = 0.f;
  if (algo >= candidate_count_)
    fail(ErrorKind::internal, std::string(what) + ": cuBLASLt algorithm index out of range");
  if (desc_.bias) {
    if (!bias) fail(ErrorKind::internal, std::string(what) + ": bias pointer missing");
    // Host-side state of the descriptor, read when the call is enqueued (so capturable).
    cublasStatus_t status =
        cublasLtMatmulDescSetAttribute(op_, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias);
    if (status != CUBLAS_STATUS_SUCCESS)
      check_cublas(status, "cublasLtMatmulDescSetAttribute(bias pointer)");
  }
  // The message is built only when the call fails: a steady-state run builds no strings.
  cublasStatus_t status = cublasLtMatmul(handle, op_, &alpha, a, a_, b, b_, &beta, d, c_, d, c_,
                                         &candidates_[algo], workspace, workspace_bytes, stream);
  if (status != CUBLAS_STATUS_SUCCESS)
    check_cublas(status, std::string("cublasLtMatmul (") + what + ", " + desc_.str() + ")");
}

cudaDataType_t cuda_dtype(DType dtype) {
  switch (dtype) {
    case DType::f32:
      return CUDA_R_32F;
    case DType::f16:
      return CUDA_R_16F;
    case DType::bf16:
      return CUDA_R_16BF;
    default:
      break;
  }
  fail(ErrorKind::dtype, std::string("cuBLASLt matmul of ") + dtype_name(dtype));
}

bool tf32_enabled() {
  static const bool on = [] {
    const char* v = std::getenv("LOOM_CUDA_TF32");
    return v && v[0] == '1';
  }();
  return on;
}

}  // namespace loom::cuda
