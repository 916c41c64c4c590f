// A row of a [rows, d] tensor spread over one block: each thread loads its chunks (packs of
// V elements, V = 16 bytes when the rows allow it) into registers once, so the passes over
// the row (statistics, then the write) read device memory once. Chunks past the register
// cache are read again from memory (L2) in each pass.
#pragma once

#include <cstdint>

#include "backends/cuda/device/types.cuh"

namespace loom::cuda {

inline constexpr int kRowCacheChunks = 4;

template <class T, int V>
struct alignas(sizeof(T) * V) Pack {
  T v[V];
};

template <class T, int V>
struct RowCache {
  Pack<T, V> chunk[kRowCacheChunks];
  const Pack<T, V>* row;
  int64_t chunks;  // chunks in the row (d / V)

  __device__ __forceinline__ void load_row(const T* p, int64_t d) {
    row = reinterpret_cast<const Pack<T, V>*>(p);
    chunks = d / V;
#pragma unroll
    for (int k = 0; k < kRowCacheChunks; ++k) {
      int64_t c = threadIdx.x + int64_t(k) * blockDim.x;
      if (c < chunks) chunk[k] = row[c];
    }
  }

  // Calls fn(chunk index, pack) for every chunk of this thread.
  template <class Fn>
  __device__ __forceinline__ void for_each(Fn&& fn) const {
#pragma unroll
    for (int k = 0; k < kRowCacheChunks; ++k) {
      int64_t c = threadIdx.x + int64_t(k) * blockDim.x;
      if (c < chunks) fn(c, chunk[k]);
    }
    for (int64_t c = threadIdx.x + int64_t(kRowCacheChunks) * blockDim.x; c < chunks;
         c += blockDim.x)
      fn(c, row[c]);
  }
};

// Threads for a row of `chunks` packs: enough that the register cache holds the row, a
// multiple of 32, at most 1024.
inline int row_threads(int64_t chunks) {
  int64_t t = (chunks + kRowCacheChunks - 1) / kRowCacheChunks;
  t = (t + 31) / 32 * 32;
  return int(t < 32 ? 32 : (t > 1024 ? 1024 : t));
}

}  // namespace loom::cuda
