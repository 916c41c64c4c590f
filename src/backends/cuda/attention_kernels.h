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

// The CUDA-core split-kv decode kernel ("cuda.attention.split_kv"), which serves every decode
// shape; the register-resident decode kernel falls back to it for misaligned views.
void run_attention_split_kv(KernelContext& ctx, const ir::Node& node,
                            std::span<const TensorView> in, std::span<TensorView> out);

// "cuda.attention.mma": f16/bf16, head dims 64 and 128, no mask input, prefill shapes.
Kernel attention_mma_kernel();

// "cuda.attention.decode" (attention_decode.cu): decode shapes without a mask or int8 K/V,
// head dims whose row is 8, 16 or 32 16-byte vectors, at most 8 query rows per kv head.
Kernel attention_decode_kernel();
bool attention_decode_fits(const ir::Node& node, std::span<const TensorView> in);

// What the split-kv kernels keep between launches, in the node's state: `groups` arrival
// counts (zero between launches: the last block of a group resets its count) and room for
// `partial_floats` floats of partial results. Made on the first run, reused by graph replays.
struct SplitBuffers {
  unsigned* arrivals;
  float* partials;
};
SplitBuffers split_buffers(KernelContext& ctx, size_t groups, size_t partial_floats);

// Streaming multiprocessors of the current device (read once).
int sm_count();

}  // namespace loom::cuda
