// CUDA C++ source of a fused node's kernel, generated from its expression (plain C++, built
// in every configuration, so the generator is tested without a GPU). NVRTC compiles it
// (kernel_cache.h). The source is self-contained: no header, the f16/bf16 conversions
// written with the same PTX instructions cuda_fp16.h's _rn intrinsics use, integer and
// conversion rules as core/scalar_semantics.h states them, and float +, -, *, / as __f*_rn
// intrinsics so that NVRTC cannot contract two ops of the expression into one FMA (the
// unfused kernels round between them).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "loom/dtype.h"
#include "ops/fused_expression.h"

namespace loom::cuda {

// How the kernel addresses one input, from its extents against the output's.
enum class FusedAccess : uint8_t {
  same,       // the output's extents: element i
  scalar,     // one element, read by every thread
  broadcast,  // index arithmetic over the output's dims with the input's strides (0 where it
              // broadcasts)
};

struct FusedKernelShape {
  std::vector<DType> inputs;
  std::vector<FusedAccess> access;  // one per input
  int rank = 1;                     // dims of the index arithmetic (>= 1)
};

inline constexpr const char* kFusedKernelName = "loom_fused";

// The kernel's source. Its one parameter is a struct of 8-byte fields, in order:
//   n; dims[rank]; for each broadcast input, strides[rank]; input pointers; output pointers.
std::string fused_kernel_source(const ops::FusedExpression& e, const FusedKernelShape& shape);

}  // namespace loom::cuda
