// GEMV for few rows of x (M <= 8) on GGUF blocks of 32 elements (Q4_0, Q4_1, Q5_0, Q5_1,
// Q8_0, IQ4_NL), and the dequantize kernel of the same formats. The GEMV gives each output
// channel one warp and walks K without shared memory (see gemv_kernel): a decode step's
// weights are small (SmolLM2's are 0.1-1 MB), so the time of one GEMV is a few memory round
// trips and the launch, not bandwidth, and the kernel is built to take as few round trips
// as it can and to fill the GPU even at N = 576.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>

#include "backends/cuda/cuda_error.h"
#include "backends/cuda/device/pdl.cuh"
#include "backends/cuda/device/types.cuh"
#include "backends/cuda/qkv_rope.h"
#include "core/scalar_semantics.h"
#include "io/ggml_types.h"
#include "loom/error.h"
#include "loom/quant.h"

namespace loom::quant {

namespace {

using io::GgmlType;

__constant__ int8_t kIq4nl[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                  1,    13,   25,  38,  53,  69,  89,  113};

__device__ inline float f16_at(const uint8_t* p) {
  const uint16_t bits = uint16_t(p[0]) | uint16_t(uint16_t(p[1]) << 8);
  return __half2float(__ushort_as_half(bits));
}

__device__ inline uint32_t u32_at(const uint8_t* p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}

template <GgmlType T>
struct Format;

template <>
struct Format<GgmlType::Q4_0> {
  static constexpr int bytes = 18;
  __device__ static void decode(const uint8_t* b, float* v) {
    const float d = f16_at(b);
#pragma unroll
    for (int j = 0; j < 16; ++j) {
      v[j] = d * float((b[2 + j] & 0x0F) - 8);
      v[j + 16] = d * float((b[2 + j] >> 4) - 8);
    }
  }
};

template <>
struct Format<GgmlType::Q4_1> {
  static constexpr int bytes = 20;
  __device__ static void decode(const uint8_t* b, float* v) {
    const float d = f16_at(b), m = f16_at(b + 2);
#pragma unroll
    for (int j = 0; j < 16; ++j) {
      v[j] = fmaf(d, float(b[4 + j] & 0x0F), m);
      v[j + 16] = fmaf(d, float(b[4 + j] >> 4), m);
    }
  }
};

template <bool has_min>
__device__ inline void decode_q5(const uint8_t* b, float* v) {
  const float d = f16_at(b);
  const float m = has_min ? f16_at(b + 2) : 0.f;
  const uint8_t* p = b + (has_min ? 4 : 2);
  const uint32_t high = u32_at(p);
  const uint8_t* q = p + 4;
  const int offset = has_min ? 0 : 16;
#pragma unroll
  for (int j = 0; j < 16; ++j) {
    const int lo = (q[j] & 0x0F) | int((high >> j) & 1u) << 4;
    const int hi = (q[j] >> 4) | int((high >> (j + 16)) & 1u) << 4;
    v[j] = d * float(lo - offset) + m;
    v[j + 16] = d * float(hi - offset) + m;
  }
}

template <>
struct Format<GgmlType::Q5_0> {
  static constexpr int bytes = 22;
  __device__ static void decode(const uint8_t* b, float* v) { decode_q5<false>(b, v); }
};

template <>
struct Format<GgmlType::Q5_1> {
  static constexpr int bytes = 24;
  __device__ static void decode(const uint8_t* b, float* v) { decode_q5<true>(b, v); }
};

template <>
struct Format<GgmlType::Q8_0> {
  static constexpr int bytes = 34;
  __device__ static void decode(const uint8_t* b, float* v) {
    const float d = f16_at(b);
#pragma unroll
    for (int j = 0; j < 32; ++j) v[j] = d * float(int8_t(b[2 + j]));
  }
};

template <>
struct Format<GgmlType::IQ4_NL> {
  static constexpr int bytes = 18;
  __device__ static void decode(const uint8_t* b, float* v) {
    const float d = f16_at(b);
#pragma unroll
    for (int j = 0; j < 16; ++j) {
      v[j] = d * float(kIq4nl[b[2 + j] & 0x0F]);
      v[j + 16] = d * float(kIq4nl[b[2 + j] >> 4]);
    }
  }
};

template <class X>
__device__ inline float to_float(X v) {
  if constexpr (std::is_same_v<X, __half>)
    return __half2float(v);
  else if constexpr (std::is_same_v<X, __nv_bfloat16>)
    return __bfloat162float(v);
  else
    return v;
}

// Four bytes at a 2-byte aligned address (every block size and field offset is even).
__device__ inline uint32_t u32_at_a2(const uint8_t* p) {
  const auto* h = reinterpret_cast<const uint16_t*>(p);
  return uint32_t(__ldg(h)) | uint32_t(__ldg(h + 1)) << 16;
}

__device__ inline float half_bits(uint32_t bits) {
  return __half2float(__ushort_as_half(uint16_t(bits & 0xFFFFu)));
}

// The bytes one lane needs from a block for its quarter s: w0 (and w1) hold codes, dm the
// f16 scale (low half) and min (high half). Loaded first for several blocks, decoded later,
// so that a warp's loads of a whole step go out before any of them is waited on.
struct Raw {
  uint32_t w0, w1, dm;
};

template <GgmlType T>
__device__ inline Raw load_raw(const uint8_t* b, int s) {
  Raw r{0, 0, 0};
  if constexpr (T == GgmlType::Q4_1 || T == GgmlType::Q5_1) {
    r.dm = __ldg(reinterpret_cast<const uint32_t*>(b));  // blocks of 20 and 24 bytes: 4-aligned
  } else {
    r.dm = __ldg(reinterpret_cast<const uint16_t*>(b));
  }
  if constexpr (T == GgmlType::Q4_0 || T == GgmlType::IQ4_NL) {
    r.w0 = u32_at_a2(b + 2 + 4 * s);
  } else if constexpr (T == GgmlType::Q4_1) {
    r.w0 = __ldg(reinterpret_cast<const uint32_t*>(b + 4 + 4 * s));
  } else if constexpr (T == GgmlType::Q5_0) {
    r.w0 = u32_at_a2(b + 6 + 4 * s);
    r.w1 = u32_at_a2(b + 2);
  } else if constexpr (T == GgmlType::Q5_1) {
    r.w0 = __ldg(reinterpret_cast<const uint32_t*>(b + 8 + 4 * s));
    r.w1 = __ldg(reinterpret_cast<const uint32_t*>(b + 4));
  } else {  // Q8_0
    r.w0 = u32_at_a2(b + 2 + 8 * s);
    r.w1 = u32_at_a2(b + 6 + 8 * s);
  }
  return r;
}

// One lane's quarter of a block: 8 of its 32 values as q' (the code after offset or table),
// with value = d * q' + m, at positions x_at[0] + 0..3 and x_at[1] + 0..3 of the block.
struct Quarter {
  float q[8];
  float d, m;
  int x_at[2];
};

template <GgmlType T>
__device__ inline void decode_raw(const Raw& r, int s, Quarter& out) {
  out.d = half_bits(r.dm);
  out.m = (T == GgmlType::Q4_1 || T == GgmlType::Q5_1) ? half_bits(r.dm >> 16) : 0.f;
  out.x_at[0] = 4 * s;
  out.x_at[1] = 16 + 4 * s;
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    const uint32_t byte = (r.w0 >> (8 * j)) & 0xFFu;
    if constexpr (T == GgmlType::IQ4_NL) {
      out.q[j] = float(kIq4nl[byte & 0x0F]);
      out.q[4 + j] = float(kIq4nl[byte >> 4]);
    } else if constexpr (T == GgmlType::Q4_0 || T == GgmlType::Q4_1) {
      const float offset = T == GgmlType::Q4_0 ? 8.f : 0.f;
      out.q[j] = float(byte & 0x0F) - offset;
      out.q[4 + j] = float(byte >> 4) - offset;
    } else if constexpr (T == GgmlType::Q5_0 || T == GgmlType::Q5_1) {
      const float offset = T == GgmlType::Q5_0 ? 16.f : 0.f;
      const int e = 4 * s + j;
      out.q[j] = float((byte & 0x0F) | ((r.w1 >> e) & 1u) << 4) - offset;
      out.q[4 + j] = float((byte >> 4) | ((r.w1 >> (e + 16)) & 1u) << 4) - offset;
    } else {  // Q8_0: values 8s .. 8s + 7
      out.q[j] = float(int8_t(byte));
      out.q[4 + j] = float(int8_t((r.w1 >> (8 * j)) & 0xFFu));
    }
  }
  if constexpr (T == GgmlType::Q8_0) {
    out.x_at[0] = 8 * s;
    out.x_at[1] = 8 * s + 4;
  }
}

constexpr int kGemvSteps = 4;                   // steps of 8 blocks in flight together
constexpr int kGemvTile = kGemvSteps * 8 * 32;  // elements of K per tile: 1024
constexpr int kGemvPadded = 33;                 // floats per block of x in shared memory

// y[i, row] for M <= 8 rows of x, W warps per block (4 when N is small, so that N = 576
// still fills the GPU; 16 when it is large, so that a block's staged x serves more rows).
// One warp per output row; lane l takes quarter l % 4 of every eighth block, starting at
// block l / 4, so a step of the warp reads 8 consecutive blocks (160 bytes of Q4_1) and each
// weight byte is read once. K goes in tiles of 1024 (32 blocks, the warp's 4 steps): each
// lane first issues its weight loads of the whole tile into registers, then the block stages
// x's tile (times g, with a norm) in shared memory while those are in flight, then one
// barrier, and the products read x from shared memory. A SmolLM2 row (K = 576 or 1536)
// costs one or two memory round trips, not one per step. Sums of x q' and of x per quarter
// are scaled by the block's d and m once.
//
// Optional prologue and epilogue (quantized_matmul's norm_weight and residual): with g, x g
// is staged and the threads also sum x^2 (reduced per row over the block in a fixed order),
// and the row's 1/rms scales the result; with gate weights G (same format and shape) the warp
// computes the row of both from the same x and writes silu(x G^T) * (x W^T); a residual is
// added to y last.
//
// Launched as a programmatic dependent launch (device/pdl.cuh): with early_weights (no kernel
// of the run writes W or G), the first tile's weight loads go out before the kernel waits for
// the previous kernel, so they overlap its tail; everything else comes after the wait.
// Shared memory of one GEMV block: x's tile and the per-warp sums of squares (norm).
template <int M, int W>
struct GemvShared {
  float xs[M][kGemvTile / 32 * kGemvPadded];
  float partial_squares[W][M];
};

// The part every GEMV kernel shares: this warp's dot products of row wr (and gate row gr)
// with the M rows of x, reduced over the warp (every lane holds them) and, with a norm, scaled
// by each row's 1/rms. Every thread of the block must call it (it stages x and has barriers);
// a warp that is not live computes nothing but still takes part.
template <GgmlType T, int M, int W, class X>
__device__ __forceinline__ void gemv_dots(GemvShared<M, W>& sh, const uint8_t* __restrict__ wr,
                                          const uint8_t* __restrict__ gr, bool live, int64_t k,
                                          const X* __restrict__ x, int m, const X* __restrict__ g,
                                          float eps, bool early_weights, float (&out)[M],
                                          float (&gate_out)[M]) {
  const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32;
  const int s = lane & 3;
  const int64_t blocks = k / 32;
  float squares[M];
#pragma unroll
  for (int i = 0; i < M; ++i) out[i] = gate_out[i] = squares[i] = 0.f;
  if (!early_weights) {
    cuda::pdl_wait();
    cuda::pdl_release();
  }
  for (int64_t tile = 0; tile < blocks; tile += kGemvTile / 32) {
    const int tile_blocks = int(min(int64_t(kGemvTile / 32), blocks - tile));
    Raw raw[kGemvSteps] = {}, gate_raw[kGemvSteps] = {};
#pragma unroll
    for (int t = 0; t < kGemvSteps; ++t) {
      const int b = (lane >> 2) + 8 * t;
      if (live && b < tile_blocks) {
        raw[t] = load_raw<T>(wr + (tile + b) * Format<T>::bytes, s);
        if (gr) gate_raw[t] = load_raw<T>(gr + (tile + b) * Format<T>::bytes, s);
      }
    }
    if (early_weights && tile == 0) {  // x, g and the residual come from earlier kernels
      cuda::pdl_wait();
      cuda::pdl_release();
    }
    __syncthreads();  // the previous tile's readers are done
    const int len = tile_blocks * 32;
#pragma unroll
    for (int i = 0; i < M; ++i) {
      if (i >= m) break;
      const X* xr = x + int64_t(i) * k + tile * 32;
      for (int c = int(threadIdx.x); c < len; c += W * 32) {
        float v = to_float(xr[c]);
        if (g) {
          squares[i] = fmaf(v, v, squares[i]);
          v *= to_float(g[tile * 32 + c]);
        }
        sh.xs[i][(c / 32) * kGemvPadded + c % 32] = v;
      }
    }
    __syncthreads();
    if (live) {
#pragma unroll
      for (int t = 0; t < kGemvSteps; ++t) {
        const int b = (lane >> 2) + 8 * t;
        if (b >= tile_blocks) break;
        Quarter qt, gq;
        decode_raw<T>(raw[t], s, qt);
        if (gr) decode_raw<T>(gate_raw[t], s, gq);
#pragma unroll
        for (int i = 0; i < M; ++i) {
          if (i >= m) break;
          const float* xb = sh.xs[i] + b * kGemvPadded;
          float sxq = 0.f, sx = 0.f, sxg = 0.f;
#pragma unroll
          for (int h = 0; h < 2; ++h) {
#pragma unroll
            for (int j = 0; j < 4; ++j) {
              const float xv = xb[qt.x_at[h] + j];
              sxq = fmaf(xv, qt.q[4 * h + j], sxq);
              if (gr) sxg = fmaf(xv, gq.q[4 * h + j], sxg);
              sx += xv;
            }
          }
          out[i] = fmaf(qt.d, sxq, fmaf(qt.m, sx, out[i]));
          if (gr) gate_out[i] = fmaf(gq.d, sxg, fmaf(gq.m, sx, gate_out[i]));
        }
      }
    }
  }
  if (g) {  // the sum of squares of each row of x, over the whole block
#pragma unroll
    for (int i = 0; i < M; ++i) {
      float v = squares[i];
#pragma unroll
      for (int offset = 16; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
      if (lane == 0) sh.partial_squares[warp][i] = v;
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < M; ++i) {
    float v = out[i], gv = gate_out[i];
#pragma unroll
    for (int offset = 16; offset > 0; offset /= 2) {
      v += __shfl_xor_sync(0xffffffffu, v, offset);
      if (gr) gv += __shfl_xor_sync(0xffffffffu, gv, offset);
    }
    if (g) {
      float ss = 0.f;
      for (int u = 0; u < W; ++u) ss += sh.partial_squares[u][i];
      const float scale = rsqrtf(ss / float(k) + eps);
      v *= scale;
      gv *= scale;
    }
    out[i] = v;
    gate_out[i] = gv;
  }
}

template <GgmlType T, int M, int W, class X>
__global__ void __launch_bounds__(W * 32)
    gemv_kernel(const uint8_t* __restrict__ w, int64_t n, int64_t k, int64_t row_bytes,
                const X* __restrict__ x, int m, float* __restrict__ y, const X* __restrict__ g,
                float eps, const float* __restrict__ residual, const uint8_t* __restrict__ gate_w,
                bool early_weights) {
  __shared__ GemvShared<M, W> sh;
  const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32;
  const int64_t row = int64_t(blockIdx.x) * W + warp;
  const bool live = row < n;  // dead warps still stage x and reach the barriers
  const uint8_t* wr = w + (live ? row : 0) * row_bytes;
  const uint8_t* gr = gate_w ? gate_w + (live ? row : 0) * row_bytes : nullptr;
  float acc[M], gate_acc[M];
  gemv_dots<T, M, W, X>(sh, wr, gr, live, k, x, m, g, eps, early_weights, acc, gate_acc);
  if (!live) return;
#pragma unroll
  for (int i = 0; i < M; ++i) {
    float v = acc[i];
    if (gr) v *= gate_acc[i] / (1.f + expf(-gate_acc[i]));
    if (lane == 0 && i < m) {
      const int64_t at = int64_t(i) * n + row;
      y[at] = residual ? v + residual[at] : v;
    }
  }
}

// With a cache window for k or v (quantized_qkv_rope_cache), the warp that finishes one of its
// features stores it in the cache instead of y: output element e = row i * n + feature is the
// window's element e in row-major order, at the starts read here, at run time (a captured
// graph replays at every position).
struct QkvCache {
  float* data;  // null: y
  int rank;
  int64_t window[4], extent[4];
};

// quantized_qkv_rope: the rows of three weights (q, k, v; W warps a block, never straddling
// two) in one launch, q and k rotated in the epilogue. A rope pair's two features are
// computed by the two warps w and w ^ 1 of one block: warp t of a head computes feature t for
// (2i, 2i+1) pairs, and feature t / 2 + (t % 2) * dims / 2 for (i, i + dims / 2) pairs; the
// features past dims pass through. The pair's values meet in shared memory.
struct QkvRope {
  const uint8_t* w[3];
  float* y[3];
  int64_t n[3];  // rows of each; the first two are whole heads, all multiples of W
  const void* offset;
  bool offset_i64;
  int head_dim, dims;
  bool interleaved;
  double log_base, scale;
  QkvCache cache[2];  // k, v
  const void* starts;
  bool starts_i64;
  int64_t first_row;  // of x, in this launch (launches go by 8 rows)
};

__device__ inline int64_t cache_offset(const QkvCache& c, const void* starts, bool starts_i64,
                                       int64_t e) {
  int64_t offset = 0, stride = 1;
  for (int d = c.rank - 1; d >= 0; --d) {
    const int64_t within = e % c.window[d];
    e /= c.window[d];
    int64_t s = starts_i64 ? static_cast<const int64_t*>(starts)[d]
                           : int64_t(static_cast<const int32_t*>(starts)[d]);
    s = s < 0 ? 0 : s;
    s = s > c.extent[d] - c.window[d] ? c.extent[d] - c.window[d] : s;
    offset += (s + within) * stride;
    stride *= c.extent[d];
  }
  return offset;
}

template <GgmlType T, int M, int W, class X>
__global__ void __launch_bounds__(W * 32)
    gemv_qkv_rope_kernel(QkvRope p, int64_t k, int64_t row_bytes, const X* __restrict__ x, int m,
                         const X* __restrict__ g, float eps, bool early_weights) {
  __shared__ GemvShared<M, W> sh;
  __shared__ float pair[W][M];
  const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32;
  int64_t t = int64_t(blockIdx.x) * W + warp;  // row over the three weights together
  int which = 0;
  while (which < 2 && t >= p.n[which]) t -= p.n[which++];
  const bool live = t < p.n[which];
  // The output feature (and so the weight row) this warp computes: rope pairs' two features
  // go to the warps t and t ^ 1.
  int64_t row = t;
  if (which < 2) {
    const int64_t head = t / p.head_dim;
    const int within = int(t - head * p.head_dim);
    const int half = p.dims / 2;
    const int feature =
        within < p.dims && !p.interleaved ? within / 2 + (within % 2) * half : within;
    row = head * p.head_dim + feature;
  }
  float acc[M], unused[M];
  gemv_dots<T, M, W, X>(sh, p.w[which] + (live ? row : 0) * row_bytes, nullptr, live, k, x, m, g,
                        eps, early_weights, acc, unused);
  if (which < 2 && lane == 0) {
#pragma unroll
    for (int i = 0; i < M; ++i) pair[warp][i] = acc[i];
  }
  __syncthreads();  // every warp of a block is of one weight, so all or none rotate
  if (!live) return;
  if (which < 2 && int(t % p.head_dim) < p.dims) {
    const int64_t offset = p.offset_i64 ? *static_cast<const int64_t*>(p.offset)
                                        : int64_t(*static_cast<const int32_t*>(p.offset));
    const int i_pair = int(t % p.head_dim) / 2;
    double sin_t, cos_t;
    sincos(
        scalar::rope_angle(scalar::rope_position(offset, 0, p.scale), i_pair, p.dims, p.log_base),
        &sin_t, &cos_t);
    const float c = float(cos_t), sn = float(sin_t);
    const bool second = warp & 1;
#pragma unroll
    for (int i = 0; i < M; ++i) {
      const float x0 = second ? pair[warp ^ 1][i] : acc[i];
      const float x1 = second ? acc[i] : pair[warp ^ 1][i];
      acc[i] = second ? x0 * sn + x1 * c : x0 * c - x1 * sn;
    }
  }
  if (lane == 0) {
    const QkvCache* cache = which > 0 && p.cache[which - 1].data ? &p.cache[which - 1] : nullptr;
#pragma unroll
    for (int i = 0; i < M; ++i) {
      if (i >= m) continue;
      if (cache)
        cache->data[cache_offset(*cache, p.starts, p.starts_i64,
                                 (p.first_row + i) * p.n[which] + row)] = acc[i];
      else
        p.y[which][int64_t(i) * p.n[which] + row] = acc[i];
    }
  }
}

struct Launch {
  const uint8_t* w;
  int64_t n, k, row_bytes;
  const void* x;
  int m;
  float* y;
  const void* norm_weight;
  float eps;
  const float* residual;
  const uint8_t* gate_w;
  bool early_weights;
  cudaStream_t stream;
};

// Output rows per block: 4 while that leaves fewer than 8 blocks per SM of an H200 (132 SMs),
// so small weights still spread over the GPU; 16 beyond, where x staged once per block
// serves more rows (a 49152-row head reads 7 MB of staged x instead of 28).
constexpr int64_t kManyRows = 4 * 132 * 8;

template <GgmlType T, int M, class X>
void launch(const Launch& l) {
  auto go = [&](auto warps) {
    constexpr int W = decltype(warps)::value;
    const int64_t grid = (l.n + W - 1) / W;
    cuda::check_cuda(
        cuda::launch_pdl(gemv_kernel<T, M, W, X>, dim3(unsigned(grid)), dim3(W * 32), 0, l.stream,
                         l.w, l.n, l.k, l.row_bytes, static_cast<const X*>(l.x), l.m, l.y,
                         static_cast<const X*>(l.norm_weight), l.eps, l.residual, l.gate_w,
                         l.early_weights),
        "quantized GEMV launch");
  };
  if (l.n >= kManyRows)
    go(std::integral_constant<int, 16>{});
  else
    go(std::integral_constant<int, 4>{});
}

template <GgmlType T, class X>
void launch_rows(int64_t m, const Launch& l) {
  if (m == 1) return launch<T, 1, X>(l);
  if (m == 2) return launch<T, 2, X>(l);
  if (m <= 4) return launch<T, 4, X>(l);
  return launch<T, 8, X>(l);
}

template <GgmlType T>
void launch_dtype(DType x_dtype, int64_t m, const Launch& l) {
  switch (x_dtype) {
    case DType::f32:
      return launch_rows<T, float>(m, l);
    case DType::f16:
      return launch_rows<T, __half>(m, l);
    case DType::bf16:
      return launch_rows<T, __nv_bfloat16>(m, l);
    default:
      fail(ErrorKind::dtype, std::string("CUDA quantized GEMV: x must be f32, f16 or bf16, not ") +
                                 dtype_name(x_dtype));
  }
}

}  // namespace

namespace {

// Four threads per block of 32, each writing 8 consecutive outputs (O: float, half or bf16,
// rounded to nearest even), so a warp's stores cover 256 contiguous elements and a weight of a
// few thousand blocks still spreads over every SM. Each thread decodes the whole block (the
// decoders are per block; its 18-34 bytes are shared by the four through L1) and keeps its
// eighth: the unrolled select keeps v[] in registers.
template <GgmlType T, class O>
__global__ void dequantize_kernel(const uint8_t* __restrict__ blocks, O* __restrict__ out,
                                  int64_t count) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t t = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; t < count * 4; t += stride) {
    const int64_t b = t >> 2;
    const int part = int(t & 3);
    float v[32];
    Format<T>::decode(blocks + b * Format<T>::bytes, v);
    O* dst = out + b * 32 + part * 8;
#pragma unroll
    for (int p = 0; p < 4; ++p)
      if (p == part) {
#pragma unroll
        for (int i = 0; i < 8; ++i) dst[i] = cuda::store_as<O>(v[p * 8 + i]);
      }
  }
}

template <GgmlType T, class O>
void launch_dequantize(const void* blocks, int64_t count, O* out, cudaStream_t s) {
  const int threads = 256;
  const int64_t grid = std::min<int64_t>((count * 4 + threads - 1) / threads, 65535);
  dequantize_kernel<T, O>
      <<<unsigned(grid), threads, 0, s>>>(static_cast<const uint8_t*>(blocks), out, count);
}

template <class O>
void dequantize_to(uint32_t ggml_type, const void* blocks, int64_t count, O* out, cudaStream_t s) {
  switch (GgmlType(ggml_type)) {
    case GgmlType::Q4_0:
      return launch_dequantize<GgmlType::Q4_0>(blocks, count, out, s);
    case GgmlType::Q4_1:
      return launch_dequantize<GgmlType::Q4_1>(blocks, count, out, s);
    case GgmlType::Q5_0:
      return launch_dequantize<GgmlType::Q5_0>(blocks, count, out, s);
    case GgmlType::Q5_1:
      return launch_dequantize<GgmlType::Q5_1>(blocks, count, out, s);
    case GgmlType::Q8_0:
      return launch_dequantize<GgmlType::Q8_0>(blocks, count, out, s);
    case GgmlType::IQ4_NL:
      return launch_dequantize<GgmlType::IQ4_NL>(blocks, count, out, s);
    default:
      fail(ErrorKind::unsupported,
           "CUDA dequantize: weight type " + io::ggml_type_name(ggml_type) + " is not supported");
  }
}

}  // namespace

void cuda_ggml_dequantize(uint32_t ggml_type, const void* blocks, int64_t count, void* out,
                          DType out_dtype, void* stream) {
  if (count <= 0) return;
  auto s = stream ? static_cast<cudaStream_t>(stream) : cudaStreamPerThread;
  cuda::dispatch_float(out_dtype, [&](auto tag) {
    dequantize_to(ggml_type, blocks, count, static_cast<decltype(tag)*>(out), s);
  });
  cuda::check_launch("dequantize");
}

void cuda_ggml_dequantize(uint32_t ggml_type, const void* blocks, int64_t count, float* out,
                          void* stream) {
  cuda_ggml_dequantize(ggml_type, blocks, count, out, DType::f32, stream);
}

void cuda_ggml_gemv(uint32_t ggml_type, const void* weight_blocks, int64_t weight_bytes, int64_t n,
                    int64_t k, const void* x, DType x_dtype, int64_t m, float* y, void* stream,
                    const GemvEdges& edges) {
  const io::GgmlTypeTraits* traits = io::find_ggml_type(ggml_type);
  if (!traits || traits->block_size != 32 || ggml_type == uint32_t(GgmlType::F32))
    fail(ErrorKind::unsupported,
         "CUDA quantized GEMV: weight type " + io::ggml_type_name(ggml_type) + " is not supported");
  if (m < 0 || m > 8) fail(ErrorKind::shape, "CUDA quantized GEMV: M must be 0..8");
  if (n < 0 || k < 0 || k % 32 != 0)
    fail(ErrorKind::shape, "CUDA quantized GEMV: K must be a multiple of 32");
  const int64_t row_bytes = k / 32 * traits->bytes_per_block;
  if (weight_bytes < n * row_bytes)
    fail(ErrorKind::shape, "CUDA quantized GEMV: too few weight bytes");
  if (m == 0 || n == 0) return;
  auto s = stream ? static_cast<cudaStream_t>(stream) : cudaStreamPerThread;
  if (k == 0) {  // an empty sum (and no norm: its mean of squares is undefined)
    if (edges.residual)
      cuda::check_cuda(cudaMemcpyAsync(y, edges.residual, size_t(m * n) * sizeof(float),
                                       cudaMemcpyDeviceToDevice, s),
                       "quantized GEMV");
    else
      cuda::check_cuda(cudaMemsetAsync(y, 0, size_t(m * n) * sizeof(float), s), "quantized GEMV");
    return;
  }
  if ((n + 3) / 4 > int64_t(0x7fffffff))
    fail(ErrorKind::shape, "CUDA quantized GEMV: too many output rows");
  const Launch l{static_cast<const uint8_t*>(weight_blocks),
                 n,
                 k,
                 row_bytes,
                 x,
                 int(m),
                 y,
                 edges.norm_weight,
                 edges.norm_eps,
                 edges.residual,
                 static_cast<const uint8_t*>(edges.gate_blocks),
                 edges.weights_invariant,
                 s};
  switch (GgmlType(ggml_type)) {
    case GgmlType::Q4_0:
      launch_dtype<GgmlType::Q4_0>(x_dtype, m, l);
      break;
    case GgmlType::Q4_1:
      launch_dtype<GgmlType::Q4_1>(x_dtype, m, l);
      break;
    case GgmlType::Q5_0:
      launch_dtype<GgmlType::Q5_0>(x_dtype, m, l);
      break;
    case GgmlType::Q5_1:
      launch_dtype<GgmlType::Q5_1>(x_dtype, m, l);
      break;
    case GgmlType::Q8_0:
      launch_dtype<GgmlType::Q8_0>(x_dtype, m, l);
      break;
    case GgmlType::IQ4_NL:
      launch_dtype<GgmlType::IQ4_NL>(x_dtype, m, l);
      break;
    default:
      fail(ErrorKind::unsupported, "CUDA quantized GEMV: weight type " +
                                       io::ggml_type_name(ggml_type) + " is not supported");
  }
  cuda::check_launch("quantized_gemv");
}

namespace {

template <GgmlType T, int M, class X>
void launch_qkv_rope(const QkvRopeArgs& a, const QkvRope& p, int64_t row_bytes, const void* x,
                     int m, cudaStream_t stream) {
  constexpr int W = 4;
  const int64_t grid = (p.n[0] + p.n[1] + p.n[2] + W - 1) / W;
  cuda::check_cuda(
      cuda::launch_pdl(gemv_qkv_rope_kernel<T, M, W, X>, dim3(unsigned(grid)), dim3(W * 32), 0,
                       stream, p, a.k, row_bytes, static_cast<const X*>(x), m,
                       static_cast<const X*>(a.norm_weight), a.norm_eps, a.weights_invariant),
      "quantized_qkv_rope launch");
}

template <GgmlType T, class X>
void qkv_rope_rows(const QkvRopeArgs& a, const QkvRope& p, int64_t row_bytes, const void* x,
                   int64_t m, cudaStream_t stream) {
  if (m == 1) return launch_qkv_rope<T, 1, X>(a, p, row_bytes, x, 1, stream);
  if (m == 2) return launch_qkv_rope<T, 2, X>(a, p, row_bytes, x, 2, stream);
  if (m <= 4) return launch_qkv_rope<T, 4, X>(a, p, row_bytes, x, int(m), stream);
  return launch_qkv_rope<T, 8, X>(a, p, row_bytes, x, int(m), stream);
}

template <GgmlType T>
void qkv_rope_dtype(const QkvRopeArgs& a, const QkvRope& p, int64_t row_bytes, const void* x,
                    int64_t m, cudaStream_t stream) {
  switch (a.x_dtype) {
    case DType::f32:
      return qkv_rope_rows<T, float>(a, p, row_bytes, x, m, stream);
    case DType::f16:
      return qkv_rope_rows<T, __half>(a, p, row_bytes, x, m, stream);
    case DType::bf16:
      return qkv_rope_rows<T, __nv_bfloat16>(a, p, row_bytes, x, m, stream);
    default:
      fail(ErrorKind::dtype, std::string("CUDA quantized_qkv_rope: x must be f32, f16 or bf16, "
                                         "not ") +
                                 dtype_name(a.x_dtype));
  }
}

}  // namespace

void cuda_ggml_gemv_qkv_rope(const QkvRopeArgs& a, void* stream) {
  const io::GgmlTypeTraits* traits = io::find_ggml_type(a.ggml_type);
  if (!traits || traits->block_size != 32 || a.ggml_type == uint32_t(GgmlType::F32))
    fail(ErrorKind::unsupported, "CUDA quantized_qkv_rope: weight type " +
                                     io::ggml_type_name(a.ggml_type) + " is not supported");
  if (a.k <= 0 || a.k % 32 != 0)
    fail(ErrorKind::shape, "CUDA quantized_qkv_rope: K must be a positive multiple of 32");
  const int64_t row_bytes = a.k / 32 * traits->bytes_per_block;
  // The kernel's warps pair up within blocks of 4 rows that never straddle two weights.
  if (a.head_dim <= 0 || a.head_dim % 4 != 0 || a.dims % 2 != 0 || a.dims > a.head_dim)
    fail(ErrorKind::shape,
         "CUDA quantized_qkv_rope: head_dim must be a multiple of 4 and dims "
         "even and at most head_dim");
  QkvRope p{};
  for (int i = 0; i < 3; ++i) {
    if (a.n[i] <= 0 || a.n[i] % 4 != 0 || (i < 2 && a.n[i] % a.head_dim != 0))
      fail(ErrorKind::shape,
           "CUDA quantized_qkv_rope: rows must be whole heads (q, k) and "
           "multiples of 4");
    if (a.weight_bytes[i] < a.n[i] * row_bytes)
      fail(ErrorKind::shape, "CUDA quantized_qkv_rope: too few weight bytes");
    p.w[i] = static_cast<const uint8_t*>(a.blocks[i]);
    p.n[i] = a.n[i];
  }
  if ((p.n[0] + p.n[1] + p.n[2]) / 4 > int64_t(0x7fffffff))
    fail(ErrorKind::shape, "CUDA quantized_qkv_rope: too many output rows");
  p.offset = a.offset;
  p.offset_i64 = a.offset_i64;
  p.head_dim = int(a.head_dim);
  p.dims = int(a.dims);
  p.interleaved = a.interleaved;
  p.log_base = std::log(a.base);
  p.scale = a.scale;
  for (int c = 0; c < 2; ++c) {
    const QkvRopeArgs::CacheWindow& w = a.caches[c];
    if (!w.data) continue;
    int64_t count = 1;
    for (int d = 0; d < w.rank; ++d) count *= w.window[d];
    if (w.rank < 1 || w.rank > 4 || !a.starts || count != a.m * a.n[1 + c])
      fail(ErrorKind::shape,
           "CUDA quantized_qkv_rope_cache: a window of rank 1 to 4 holding "
           "the projection's elements");
    p.cache[c].data = w.data;
    p.cache[c].rank = w.rank;
    for (int d = 0; d < w.rank; ++d) {
      if (w.window[d] < 1 || w.window[d] > w.extent[d])
        fail(ErrorKind::shape, "CUDA quantized_qkv_rope_cache: the window does not fit");
      p.cache[c].window[d] = w.window[d];
      p.cache[c].extent[d] = w.extent[d];
    }
  }
  p.starts = a.starts;
  p.starts_i64 = a.starts_i64;
  auto s = stream ? static_cast<cudaStream_t>(stream) : cudaStreamPerThread;
  const size_t x_row_bytes = storage_bytes(a.x_dtype, a.k);
  for (int64_t r = 0; r < a.m; r += 8) {
    const int64_t rows = std::min<int64_t>(8, a.m - r);
    for (int i = 0; i < 3; ++i) p.y[i] = a.y[i] ? a.y[i] + r * a.n[i] : nullptr;
    p.first_row = r;
    const void* x = static_cast<const char*>(a.x) + size_t(r) * x_row_bytes;
    switch (GgmlType(a.ggml_type)) {
      case GgmlType::Q4_0:
        qkv_rope_dtype<GgmlType::Q4_0>(a, p, row_bytes, x, rows, s);
        break;
      case GgmlType::Q4_1:
        qkv_rope_dtype<GgmlType::Q4_1>(a, p, row_bytes, x, rows, s);
        break;
      case GgmlType::Q5_0:
        qkv_rope_dtype<GgmlType::Q5_0>(a, p, row_bytes, x, rows, s);
        break;
      case GgmlType::Q5_1:
        qkv_rope_dtype<GgmlType::Q5_1>(a, p, row_bytes, x, rows, s);
        break;
      case GgmlType::Q8_0:
        qkv_rope_dtype<GgmlType::Q8_0>(a, p, row_bytes, x, rows, s);
        break;
      case GgmlType::IQ4_NL:
        qkv_rope_dtype<GgmlType::IQ4_NL>(a, p, row_bytes, x, rows, s);
        break;
      default:
        fail(ErrorKind::unsupported, "CUDA quantized_qkv_rope: weight type " +
                                         io::ggml_type_name(a.ggml_type) + " is not supported");
    }
  }
  cuda::check_launch("quantized_qkv_rope");
}

}  // namespace loom::quant
