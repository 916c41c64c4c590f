// Elementwise kernel templates: a 16-byte vector path for contiguous same-shape operands
// (or scalar ones) and a strided path for broadcasting. Functors compute in compute_t<T>.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "backends/cuda/cuda_error.h"
#include "backends/cuda/device/indexing.cuh"
#include "backends/cuda/device/launch.cuh"
#include "backends/cuda/device/types.cuh"

namespace loom::cuda {

// Vectors each thread handles: loads for all of them are issued before the first use.
inline constexpr int kUnroll = 2;

// out[i] = f(a[i]) over n contiguous elements.
template <class T, class Out, class F>
__global__ void unary_vec_kernel(const T* __restrict__ a, Out* __restrict__ out, int64_t n, F f) {
  static_assert(sizeof(T) == sizeof(Out), "the vector path keeps the element size");
  constexpr int V = kVec<T>;
  int64_t nvec = n / V;
  int64_t base = int64_t(blockIdx.x) * blockDim.x * kUnroll + threadIdx.x;
  Vec16<T> va[kUnroll];
#pragma unroll
  for (int u = 0; u < kUnroll; ++u) {
    int64_t i = base + int64_t(u) * blockDim.x;
    if (i < nvec) va[u] = reinterpret_cast<const Vec16<T>*>(a)[i];
  }
#pragma unroll
  for (int u = 0; u < kUnroll; ++u) {
    int64_t i = base + int64_t(u) * blockDim.x;
    if (i < nvec) {
      Vec16<Out> r;
#pragma unroll
      for (int k = 0; k < V; ++k) r.v[k] = store_as<Out>(f(load(va[u].v[k])));
      reinterpret_cast<Vec16<Out>*>(out)[i] = r;
    }
  }
  if (blockIdx.x == 0)
    for (int64_t i = nvec * V + threadIdx.x; i < n; i += blockDim.x)
      out[i] = store_as<Out>(f(load(a[i])));
}

// Scalar-per-thread version for unaligned or mixed-size data.
template <class T, class Out, class F>
__global__ void unary_scalar_kernel(const T* __restrict__ a, Out* __restrict__ out, int64_t n,
                                    F f) {
  int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    out[i] = store_as<Out>(f(load(a[i])));
}

template <class T, class Out, class F>
void launch_unary(const T* a, Out* out, int64_t n, F f, cudaStream_t stream, const char* name) {
  if (n == 0) return;
  if constexpr (sizeof(T) == sizeof(Out)) {
    if (aligned16(a) && aligned16(out)) {
      int64_t nvec = n / kVec<T>;
      unary_vec_kernel<T, Out, F>
          <<<blocks_for(nvec, int64_t(kThreads) * kUnroll), kThreads, 0, stream>>>(a, out, n, f);
      check_launch(name);
      return;
    }
  }
  unary_scalar_kernel<T, Out, F>
      <<<std::min(blocks_for(n, kThreads), 65536u), kThreads, 0, stream>>>(a, out, n, f);
  check_launch(name);
}

// out[i] = f(a[i or 0], b[i or 0]): same-shape operands, either of which may be a scalar.
template <class T, class F>
__global__ void binary_vec_kernel(const T* __restrict__ a, const T* __restrict__ b,
                                  T* __restrict__ out, int64_t n, bool a_scalar, bool b_scalar,
                                  F f) {
  constexpr int V = kVec<T>;
  using C = compute_t<T>;
  int64_t nvec = n / V;
  int64_t base = int64_t(blockIdx.x) * blockDim.x * kUnroll + threadIdx.x;
  C sa = a_scalar ? C(load(a[0])) : C(0);
  C sb = b_scalar ? C(load(b[0])) : C(0);
  Vec16<T> va[kUnroll], vb[kUnroll];
#pragma unroll
  for (int u = 0; u < kUnroll; ++u) {
    int64_t i = base + int64_t(u) * blockDim.x;
    if (i < nvec) {
      if (!a_scalar) va[u] = reinterpret_cast<const Vec16<T>*>(a)[i];
      if (!b_scalar) vb[u] = reinterpret_cast<const Vec16<T>*>(b)[i];
    }
  }
#pragma unroll
  for (int u = 0; u < kUnroll; ++u) {
    int64_t i = base + int64_t(u) * blockDim.x;
    if (i < nvec) {
      Vec16<T> r;
#pragma unroll
      for (int k = 0; k < V; ++k) {
        C x = a_scalar ? sa : C(load(va[u].v[k]));
        C y = b_scalar ? sb : C(load(vb[u].v[k]));
        r.v[k] = store_as<T>(f(x, y));
      }
      reinterpret_cast<Vec16<T>*>(out)[i] = r;
    }
  }
  if (blockIdx.x == 0)
    for (int64_t i = nvec * V + threadIdx.x; i < n; i += blockDim.x) {
      C x = a_scalar ? sa : C(load(a[i]));
      C y = b_scalar ? sb : C(load(b[i]));
      out[i] = store_as<T>(f(x, y));
    }
}

template <class T, class Out, class F>
__global__ void binary_strided_kernel(const T* __restrict__ a, const T* __restrict__ b,
                                      Out* __restrict__ out, int64_t n, StridedIndexer<2> ix, F f) {
  using C = compute_t<T>;
  int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    int64_t off[2];
    ix.offsets(i, off);
    out[i] = store_as<Out>(f(C(load(a[off[0]])), C(load(b[off[1]]))));
  }
}

}  // namespace loom::cuda
