// CUDA kernel families; the CUDA backend calls each registration once. The op semantics are
// those of the CPU kernels (src/backends/cpu), which the GPU tests compare against.
#pragma once

#include "backends/backend.h"

namespace loom::cuda {

void register_source_kernels(Backend& b);       // assign
void register_elementwise_kernels(Backend& b);  // binary, compare, where
void register_unary_kernels(Backend& b);        // unary math
void register_cast_kernels(Backend& b);         // cast
void register_matmul_kernels(Backend& b);
void register_reduce_kernels(Backend& b);
void register_norm_kernels(Backend& b);
void register_shape_kernels(Backend& b);
void register_slice_kernels(Backend& b);
void register_position_kernels(Backend& b);
void register_attention_kernels(Backend& b);  // scaled_dot_product_attention

}  // namespace loom::cuda
