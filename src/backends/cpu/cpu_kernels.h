// CPU kernel families; the CPU backend calls each registration once.
#pragma once

#include "backends/backend.h"

namespace loom::cpu {

void register_source_kernels(Backend& b);  // assign
void register_elementwise_kernels(Backend& b);
void register_matmul_kernels(Backend& b);
void register_reduce_kernels(Backend& b);
void register_norm_kernels(Backend& b);
void register_shape_kernels(Backend& b);
void register_slice_kernels(Backend& b);
void register_position_kernels(Backend& b);
void register_attention_kernels(Backend& b);

}  // namespace loom::cpu
