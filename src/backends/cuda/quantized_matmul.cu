// GEMV for few rows of x (M <= 8) on GGUF blocks of 32 elements (Q4_0, Q4_1, Q5_0, Q5_1,
// Q8_0, IQ4_NL). A block of 8 warps owns 8 output channels; the K dim is walked in tiles of
// 1024 elements: all threads stage x's tile in shared memory as floats (rows padded to 33
// floats per 32 so that lane b reading block b hits distinct banks), each warp copies its
// weight row's tile (32 blocks) to shared memory with 16-byte loads when the row is aligned,
// and lane b expands block b in registers and multiplies it with the M rows of x. When N is
// small, the K dim is split over gridDim.y and partial sums are added atomically.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <type_traits>

#include "backends/cuda/cuda_error.h"
#include "backends/cuda/device/types.cuh"
#include "io/ggml_types.h"
#include "loom/error.h"
#include "loom/quant.h"

namespace loom::quant {

namespace {

using io::GgmlType;

constexpr int kWarps = 8;    // 8 output channels per block: each x tile staged serves 8 rows of W
constexpr int kTile = 1024;  // elements of K per tile: 32 blocks, one per lane
constexpr int kBlocksPerTile = kTile / 32;
constexpr int kPaddedBlock = 33;    // floats per block of x in shared memory
constexpr int kMaxBlockBytes = 34;  // Q8_0
constexpr int kStageBytes = ((kBlocksPerTile * kMaxBlockBytes + 15) / 16) * 16;

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

// M is the row capacity (1, 2, 4 or 8); m <= M rows are live.
template <GgmlType T, int M, class X>
__global__ void __launch_bounds__(kWarps * 32)
    gemv_kernel(const uint8_t* __restrict__ w, int64_t n, int64_t k, int64_t row_bytes,
                const X* __restrict__ x, int m, float* __restrict__ y, int64_t k_per_split,
                bool accumulate) {
  using F = Format<T>;
  __shared__ float xs[M][kBlocksPerTile * kPaddedBlock];
  __shared__ __align__(16) uint8_t staged[kWarps][kStageBytes];
  const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32;
  const int64_t row = int64_t(blockIdx.x) * kWarps + warp;
  const int64_t k_begin = int64_t(blockIdx.y) * k_per_split;
  const int64_t k_end = min(k, k_begin + k_per_split);
  float acc[M];
#pragma unroll
  for (int i = 0; i < M; ++i) acc[i] = 0.f;

  for (int64_t tile = k_begin; tile < k_end; tile += kTile) {
    const int len = int(min(int64_t(kTile), k_end - tile));  // a multiple of 32
    __syncthreads();                                         // the previous tile's readers are done
    for (int e = int(threadIdx.x); e < m * len; e += kWarps * 32) {
      const int i = e / len, c = e % len;
      xs[i][(c / 32) * kPaddedBlock + c % 32] = to_float(x[int64_t(i) * k + tile + c]);
    }
    if (row < n) {
      const int bytes = len / 32 * F::bytes;
      const uint8_t* src = w + row * row_bytes + (tile / 32) * F::bytes;
      if ((reinterpret_cast<uintptr_t>(src) % 16) == 0) {
        // Whole 16-byte chunks, then the tail; every byte is read once.
        const int chunks = bytes / 16;
        for (int c = lane; c < chunks; c += 32)
          reinterpret_cast<uint4*>(staged[warp])[c] = reinterpret_cast<const uint4*>(src)[c];
        for (int c = chunks * 16 + lane; c < bytes; c += 32) staged[warp][c] = src[c];
      } else {
        for (int c = lane; c < bytes; c += 32) staged[warp][c] = src[c];
      }
    }
    __syncthreads();
    if (row < n && lane < len / 32) {
      float v[32];
      F::decode(staged[warp] + lane * F::bytes, v);
#pragma unroll
      for (int i = 0; i < M; ++i) {
        if (i >= m) break;
        const float* xr = xs[i] + lane * kPaddedBlock;
        float s = 0.f;
#pragma unroll
        for (int j = 0; j < 32; ++j) s = fmaf(v[j], xr[j], s);
        acc[i] += s;
      }
    }
  }
  if (row >= n) return;
#pragma unroll
  for (int i = 0; i < M; ++i) {
    float s = acc[i];
#pragma unroll
    for (int offset = 16; offset > 0; offset /= 2) s += __shfl_xor_sync(0xffffffffu, s, offset);
    if (lane == 0 && i < m) {
      if (accumulate)
        atomicAdd(&y[int64_t(i) * n + row], s);
      else
        y[int64_t(i) * n + row] = s;
    }
  }
}

struct Launch {
  const uint8_t* w;
  int64_t n, k, row_bytes;
  const void* x;
  int m;
  float* y;
  dim3 grid;
  int64_t k_per_split;
  bool accumulate;
  cudaStream_t stream;
};

template <GgmlType T, int M, class X>
void launch(const Launch& l) {
  gemv_kernel<T, M, X><<<l.grid, kWarps * 32, 0, l.stream>>>(l.w, l.n, l.k, l.row_bytes,
                                                             static_cast<const X*>(l.x), l.m, l.y,
                                                             l.k_per_split, l.accumulate);
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

// One thread per block of 32: the same decoders as the GEMV, written out as O (float, half
// or bf16, rounded to nearest even).
template <GgmlType T, class O>
__global__ void dequantize_kernel(const uint8_t* __restrict__ blocks, O* __restrict__ out,
                                  int64_t count) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t b = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; b < count; b += stride) {
    float v[32];
    Format<T>::decode(blocks + b * Format<T>::bytes, v);
#pragma unroll
    for (int i = 0; i < 32; ++i) out[b * 32 + i] = cuda::store_as<O>(v[i]);
  }
}

template <GgmlType T, class O>
void launch_dequantize(const void* blocks, int64_t count, O* out, cudaStream_t s) {
  const int threads = 256;
  const int64_t grid = std::min<int64_t>((count + threads - 1) / threads, 65535);
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
                    int64_t k, const void* x, DType x_dtype, int64_t m, float* y, void* stream) {
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
  // Split K when there are too few blocks of rows to fill the GPU (about 2 per SM).
  int device = 0, sms = 0;
  cuda::check_cuda(cudaGetDevice(&device), "quantized GEMV");
  cuda::check_cuda(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device),
                   "quantized GEMV");
  const int64_t row_blocks = (n + kWarps - 1) / kWarps;
  const int64_t tiles = (k + kTile - 1) / kTile;
  int64_t splits = 1;
  if (row_blocks < 2 * sms)
    splits = std::min<int64_t>(tiles, (2 * sms + row_blocks - 1) / row_blocks);
  const int64_t k_per_split = ((tiles + splits - 1) / splits) * kTile;
  splits = (k + k_per_split - 1) / k_per_split;
  if (k == 0) splits = 1;
  const bool accumulate = splits > 1 || k == 0;
  if (accumulate)
    cuda::check_cuda(cudaMemsetAsync(y, 0, size_t(m * n) * sizeof(float), s), "quantized GEMV");
  if (k == 0) return;
  const Launch l{static_cast<const uint8_t*>(weight_blocks),
                 n,
                 k,
                 row_bytes,
                 x,
                 int(m),
                 y,
                 dim3(unsigned(row_blocks), unsigned(splits)),
                 k_per_split,
                 accumulate,
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

}  // namespace loom::quant
