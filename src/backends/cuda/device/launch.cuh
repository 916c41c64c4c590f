// Launch helpers shared by the kernel families: grid sizes, the stream of a kernel call, and
// the element-count type kernels index with.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "backends/backend.h"

namespace loom::cuda {

inline constexpr int kThreads = 256;

inline cudaStream_t stream_of(const KernelContext& ctx) {
  return static_cast<cudaStream_t>(ctx.stream);
}

// Blocks for `n` work items of `per_block` each; the x dimension allows 2^31 - 1 blocks.
inline unsigned blocks_for(int64_t n, int64_t per_block) {
  int64_t b = (n + per_block - 1) / per_block;
  return unsigned(std::clamp<int64_t>(b, 1, 0x7fffffff));
}

inline bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

// Elements of T in one 16-byte vector.
template <class T>
inline constexpr int kVec = sizeof(T) >= 16 ? 1 : int(16 / sizeof(T));

template <class T>
struct alignas(16) Vec16 {
  T v[kVec<T>];
};

}  // namespace loom::cuda
