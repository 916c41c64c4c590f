// The dense GEMV kernel of matmul (dense_gemv.cu): f16 and bf16, at most 8 rows of x, the
// weight stored [N, K] (x W^T), registered by matmul.cu beside cuBLASLt so that the tactic
// selector times it against cuBLASLt's algorithms.
#pragma once

#include <span>

#include "backends/backend.h"

namespace loom::cuda {

inline constexpr const char* kDenseGemvName = "cuda.matmul.gemv";

// Whether the GEMV kernel runs the matmul node with these inputs: a [..., M, K] contiguous
// (not transposed) with M (all batch rows together) <= 8, b a matrix stored [N, K] (the
// node's transpose_b on a contiguous b, or a transposed view of one), f16 or bf16, one dtype,
// an optional contiguous bias [N], K > 0.
bool dense_gemv_supports(const ir::Node& node, std::span<const TensorView> in);

// The kernel as registered (name kDenseGemvName, strided_inputs: it reads the transposed
// view of b in place).
Kernel dense_gemv_kernel();

// One GEMV call outside a plan, for tests and benchmarks: y [m, n] = x [m, k] w[n, k]^T
// (+ bias [n]), any m (launched per 8 rows), dtype f16 or bf16. `early_weights`: w is
// written by no kernel the launch may overlap (programmatic dependent launch).
void dense_gemv(DType dtype, const void* x, const void* w, const void* bias, void* y, int64_t m,
                int64_t n, int64_t k, bool early_weights, void* stream);

}  // namespace loom::cuda
