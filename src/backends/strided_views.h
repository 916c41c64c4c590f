// What kernels that read strided views (Kernel::strided_inputs) ask of them. A matmul
// operand that is a contiguous tensor with its last two axes swapped (what transpose(x) is
// once it is a view) is the same bytes as a transposed operand, so the matmul kernels of both
// backends read it with the opposite transpose flag instead of having the planner gather it.
#pragma once

#include <span>

#include "backends/backend.h"

namespace loom {

// Both run on every kernel call, so neither allocates.
inline bool is_contiguous(const TensorView& v) {
  // A view without strides (a kernel asked about support by dtype and rank) is contiguous.
  if (v.strides.empty()) return true;
  if (v.strides.size() != v.shape.size()) return false;
  int64_t expected = 1;
  for (size_t d = v.shape.size(); d-- > 0;) {
    if (v.strides[d] != expected) return false;
    expected *= v.shape[d];
  }
  return true;
}

// Whether v's bytes are a contiguous tensor of v's shape with the last two axes swapped (unit
// axes may have any stride).
inline bool is_swapped_matrix(const TensorView& v) {
  const size_t r = v.shape.size();
  if (r < 2 || v.strides.size() != r) return false;
  int64_t expected = 1;
  auto next = [&](size_t d) {
    bool ok = v.shape[d] == 1 || v.strides[d] == expected;
    expected *= v.shape[d];
    return ok;
  };
  // Stored innermost first: axis r - 2, then r - 1, then the batch axes.
  if (!next(r - 2) || !next(r - 1)) return false;
  for (size_t d = r - 2; d-- > 0;)
    if (!next(d)) return false;
  return true;
}

// The transpose flag a matmul kernel passes for operand v, given the node's own flag.
inline bool operand_transposed(bool node_flag, const TensorView& v) {
  return !is_contiguous(v) && is_swapped_matrix(v) ? !node_flag : node_flag;
}

// Part of the matmul kernels' `supports`: a and b contiguous (at any alignment, which BLAS
// and cuBLASLt take as it comes) or swapped matrices; the bias contiguous.
inline bool matmul_reads_views(std::span<const TensorView> in) {
  for (size_t i = 0; i < in.size(); ++i)
    if (!is_contiguous(in[i]) && (i >= 2 || !is_swapped_matrix(in[i]))) return false;
  return true;
}

}  // namespace loom
