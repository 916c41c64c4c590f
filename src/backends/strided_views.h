// What kernels that read strided views (Kernel::strided_inputs) ask of them. A matmul
// operand that is a contiguous tensor with its last two axes swapped (what transpose(x) is
// once it is a view) is the same bytes as a transposed operand, so the matmul kernels of both
// backends read it with the opposite transpose flag instead of having the planner gather it.
#pragma once

#include <span>
#include <utility>

#include "backends/backend.h"

namespace loom {

inline bool is_contiguous(const TensorView& v) { return v.strides == contiguous_strides(v.shape); }

// Whether v's bytes are a contiguous tensor of v's shape with the last two axes swapped.
inline bool is_swapped_matrix(const TensorView& v) {
  const size_t r = v.shape.size();
  if (r < 2) return false;
  Extents stored = v.shape;
  std::swap(stored[r - 2], stored[r - 1]);
  Strides expected = contiguous_strides(stored);
  std::swap(expected[r - 2], expected[r - 1]);
  for (size_t d = 0; d < r; ++d)
    if (v.shape[d] != 1 && v.strides[d] != expected[d]) return false;
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
