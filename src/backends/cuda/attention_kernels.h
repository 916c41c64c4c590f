// The CUDA kernels of scaled_dot_product_attention, shared between attention.cu (the
// CUDA-core split-kv decode and tiled prefill kernels, and the registration) and
// attention_mma.cu (the tensor-core prefill kernel).
#pragma once

#include <cstdint>
#include <span>

#include "backends/backend.h"

namespace loom::cuda {

// Query rows up to which a call is decode (split_kv); prefill kernels take longer ones.
constexpr int64_t kDecodeQueries = 8;

// The CUDA-core prefill kernel ("cuda.attention.tiled"), which serves every shape and dtype;
// the tensor-core kernel falls back to it for misaligned views.
void run_attention_tiled(KernelContext& ctx, const ir::Node& node, std::span<const TensorView> in,
                         std::span<TensorView> out);

// "cuda.attention.mma": f16/bf16, head dims 64 and 128, no mask input, prefill shapes.
Kernel attention_mma_kernel();

}  // namespace loom::cuda
