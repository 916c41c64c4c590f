// CUDA kernel families; the CUDA backend calls each registration once. The op semantics are
// those of the CPU kernels (src/backends/cpu), which the GPU tests compare against.
#pragma once

#include "backends/backend.h"

namespace loom::cuda {

// One per op family (src/ops/families.def); the elementwise family's kernels are split
// over three files: binary, compare and where here, unary math and cast below.
#define LOOM_OP_FAMILY(name) void register_##name##_kernels(Backend& b);
#include "ops/families.def"
#undef LOOM_OP_FAMILY
void register_unary_kernels(Backend& b);  // unary math
void register_cast_kernels(Backend& b);   // cast

// `count` values of x converted to y's dtype on `stream` as the cast op converts them; for
// kernels that round an input before a library call (quantized_matmul's f16 GEMM).
void cast_on_device(const void* x, DType x_dtype, void* y, DType y_dtype, int64_t count,
                    void* stream);

// Every family's kernels: what the CUDA backend holds.
inline void register_kernels(Backend& b) {
#define LOOM_OP_FAMILY(name) register_##name##_kernels(b);
#include "ops/families.def"
#undef LOOM_OP_FAMILY
  register_unary_kernels(b);
  register_cast_kernels(b);
}

}  // namespace loom::cuda
