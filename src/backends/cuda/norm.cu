// softmax and log_softmax (any axis), layer_norm and rms_norm (last axis). Along the last
// axis a block owns a row held in registers: one read of x, statistics (f32 for softmax,
// f64 for the norms), one write.
// Along another axis a thread owns a column and keeps an online max and sum.
#include <cmath>

#include "backends/cuda/cuda_error.h"
#include "backends/cuda/cuda_kernels.h"
#include "backends/cuda/device/block_reduce.cuh"
#include "backends/cuda/device/launch.cuh"
#include "backends/cuda/device/row_cache.cuh"
#include "backends/cuda/device/types.cuh"
#include "ops/norm_params.h"

namespace loom::cuda {

namespace {

// Online softmax statistics: running max m and sum s of exp(x - m).
__device__ __forceinline__ void online_add(float& m, float& s, float x) {
  if (x > m) {
    s = (m == -INFINITY ? 0.f : s * expf(m - x)) + 1.f;
    m = x;
  } else {
    s += expf(x - m);
  }
}

// exp(x) as 2^(x log2 e): one MUFU.EX2 and a multiply, within a few ulp of expf.
__device__ __forceinline__ float fast_exp(float x) { return exp2f(x * 1.4426950408889634f); }

// A row per block. The cached chunks are read from memory once: a max pass and an exp/sum
// pass over registers, the exponentials kept for the write, so each element costs one
// exponential (bf16 rows are otherwise bound by arithmetic, not bandwidth). Chunks past the
// cache (rows longer than kRowCacheChunks * V * 1024) are read again from L2 in each pass.
template <class T, int V, bool kLog>
__device__ __forceinline__ void softmax_row(const T* __restrict__ x, T* __restrict__ y, int64_t d,
                                            float* scratch) {
  RowCache<T, V> cache;
  cache.load_row(x, d);
  float m = -INFINITY;
  cache.for_each([&](int64_t, const Pack<T, V>& p) {
#pragma unroll
    for (int k = 0; k < V; ++k) m = fmaxf(m, float(load(p.v[k])));
  });
  // fmaxf drops NaN; the sum below still turns a row with a NaN into NaN, as on the CPU.
  const float row_max = block_reduce(m, MaxOp{}, scratch);
  // A row of -inf only (fully masked) has no finite max: exp(-inf - -inf) is NaN there, as
  // on the CPU.
  float e[kRowCacheChunks][V];
  float s = 0.f;
#pragma unroll
  for (int c = 0; c < kRowCacheChunks; ++c) {
    int64_t chunk = threadIdx.x + int64_t(c) * blockDim.x;
    if (chunk < cache.chunks) {
#pragma unroll
      for (int k = 0; k < V; ++k) {
        e[c][k] = fast_exp(float(load(cache.chunk[c].v[k])) - row_max);
        s += e[c][k];
      }
    }
  }
  for (int64_t chunk = threadIdx.x + int64_t(kRowCacheChunks) * blockDim.x; chunk < cache.chunks;
       chunk += blockDim.x) {
    Pack<T, V> p = cache.row[chunk];
#pragma unroll
    for (int k = 0; k < V; ++k) s += fast_exp(float(load(p.v[k])) - row_max);
  }
  const float row_sum = block_reduce(s, SumOp{}, scratch);
  const float inv = 1.f / row_sum, log_sum = logf(row_sum);
  auto* out = reinterpret_cast<Pack<T, V>*>(y);
#pragma unroll
  for (int c = 0; c < kRowCacheChunks; ++c) {
    int64_t chunk = threadIdx.x + int64_t(c) * blockDim.x;
    if (chunk < cache.chunks) {
      Pack<T, V> r;
#pragma unroll
      for (int k = 0; k < V; ++k) {
        float v = float(load(cache.chunk[c].v[k])) - row_max;
        r.v[k] = store_as<T>(kLog ? v - log_sum : e[c][k] * inv);
      }
      out[chunk] = r;
    }
  }
  for (int64_t chunk = threadIdx.x + int64_t(kRowCacheChunks) * blockDim.x; chunk < cache.chunks;
       chunk += blockDim.x) {
    Pack<T, V> p = cache.row[chunk], r;
#pragma unroll
    for (int k = 0; k < V; ++k) {
      float v = float(load(p.v[k])) - row_max;
      r.v[k] = store_as<T>(kLog ? v - log_sum : fast_exp(v) * inv);
    }
    out[chunk] = r;
  }
}

// Rows loop over the grid: a grid has at most 2^31 - 1 blocks, and a tensor may have more
// rows (indices are 64-bit throughout). The loop is uniform over the block, so the block's
// barriers stay matched.
template <class T, int V, bool kLog>
__global__ void softmax_row_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t rows,
                                   int64_t d) {
  __shared__ float scratch[32];
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x)
    softmax_row<T, V, kLog>(x + row * d, y + row * d, d, scratch);
}

// Softmax along a non-last axis: x viewed as [outer, n, inner], one column per thread.
template <class T, bool kLog>
__global__ void softmax_column_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t outer,
                                      int64_t n, int64_t inner) {
  int64_t columns = outer * inner, stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t col = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; col < columns; col += stride) {
    int64_t o = col / inner, i = col - o * inner;
    int64_t start = o * n * inner + i;
    float m = -INFINITY, s = 0.f;
    for (int64_t j = 0; j < n; ++j) online_add(m, s, float(load(x[start + j * inner])));
    float inv = 1.f / s, log_sum = logf(s);
    for (int64_t j = 0; j < n; ++j) {
      float v = float(load(x[start + j * inner])) - m;
      y[start + j * inner] = store_as<T>(kLog ? v - log_sum : expf(v) * inv);
    }
  }
}

// layer_norm (kRms false) and rms_norm (kRms true) of one row per block. The statistics
// accumulate in double, as every float reduction does (DESIGN.md): with a row mean far from
// zero an f32 sum loses the mean's low bits, and the output carries that error. The mean is
// then split into two floats (center_hi + center_lo) so the per-element work stays in f32:
// x - center_hi is exact for x near the mean.
template <class T, int V, bool kRms>
__device__ __forceinline__ void norm_row(const T* __restrict__ x, T* __restrict__ y,
                                         const T* __restrict__ weight, const T* __restrict__ bias,
                                         int64_t d, float eps, double* scratch) {
  RowCache<T, V> cache;
  cache.load_row(x, d);
  float center_hi = 0.f, center_lo = 0.f;
  if constexpr (!kRms) {
    double s = 0.0;
    cache.for_each([&](int64_t, const Pack<T, V>& p) {
#pragma unroll
      for (int k = 0; k < V; ++k) s += double(float(load(p.v[k])));
    });
    const double center = block_reduce(s, SumOp{}, scratch) / double(d);
    center_hi = float(center);
    center_lo = float(center - double(center_hi));
  }
  double ss = 0.0;
  cache.for_each([&](int64_t, const Pack<T, V>& p) {
#pragma unroll
    for (int k = 0; k < V; ++k) {
      float v = (float(load(p.v[k])) - center_hi) - center_lo;
      ss += double(v * v);
    }
  });
  const float scale =
      float(1.0 / sqrt(block_reduce(ss, SumOp{}, scratch) / double(d) + double(eps)));
  auto* out = reinterpret_cast<Pack<T, V>*>(y);
  auto* w = reinterpret_cast<const Pack<T, V>*>(weight);
  auto* b = reinterpret_cast<const Pack<T, V>*>(bias);
  cache.for_each([&](int64_t c, const Pack<T, V>& p) {
    Pack<T, V> r, pw, pb;
    if (w) pw = w[c];
    if (b) pb = b[c];
#pragma unroll
    for (int k = 0; k < V; ++k) {
      float v = ((float(load(p.v[k])) - center_hi) - center_lo) * scale;
      if (w) v *= float(load(pw.v[k]));
      if (b) v += float(load(pb.v[k]));
      r.v[k] = store_as<T>(v);
    }
    out[c] = r;
  });
}

template <class T, int V, bool kRms>
__global__ void norm_row_kernel(const T* __restrict__ x, T* __restrict__ y,
                                const T* __restrict__ weight, const T* __restrict__ bias,
                                int64_t rows, int64_t d, float eps) {
  __shared__ double scratch[32];
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x)  // see softmax_row_kernel
    norm_row<T, V, kRms>(x + row * d, y + row * d, weight, bias, d, eps, scratch);
}

// row_threads(), cut to what the kernel's registers allow in one block: a row kernel that
// needs more than 64 registers a thread cannot run 1024 threads (the launch would fail), and
// capping its registers instead makes it spill. Fewer threads keep less of the row in
// registers and read the rest again, which stays correct.
template <auto kernel>
int fit_threads(int64_t chunks) {
  static const int limit = [&] {
    cudaFuncAttributes attributes{};
    if (cudaFuncGetAttributes(&attributes, kernel) != cudaSuccess) {
      (void)cudaGetLastError();
      return 256;
    }
    return std::max(32, attributes.maxThreadsPerBlock / 32 * 32);
  }();
  return std::min(row_threads(chunks), limit);
}

// 16-byte packs when every row start and the parameters are 16-byte aligned.
template <class T>
bool rows_vectorizable(int64_t d, std::initializer_list<const void*> pointers) {
  if ((d * int64_t(sizeof(T))) % 16 != 0) return false;
  for (const void* p : pointers)
    if (p && !aligned16(p)) return false;
  return true;
}

template <bool kLog>
void run_softmax(KernelContext& ctx, const ir::Node& node, std::span<const TensorView> in,
                 std::span<TensorView> out) {
  const TensorView& x = in[0];
  if (x.numel() == 0) return;
  int axis =
      normalize_axis(ops::SoftmaxParams::decode(node).axis, x.rank(), node.op_name().c_str());
  int64_t outer = 1, n = x.shape[size_t(axis)], inner = 1;
  for (int d = 0; d < axis; ++d) outer *= x.shape[size_t(d)];
  for (int d = axis + 1; d < x.rank(); ++d) inner *= x.shape[size_t(d)];
  const char* name = kLog ? "log_softmax" : "softmax";
  cudaStream_t stream = stream_of(ctx);
  dispatch_float(x.dtype, [&](auto tag) {
    using T = decltype(tag);
    const T* xp = x.as<const T>();
    T* yp = out[0].as<T>();
    if (inner != 1) {
      softmax_column_kernel<T, kLog>
          <<<std::min(blocks_for(outer * inner, kThreads), 65536u), kThreads, 0, stream>>>(
              xp, yp, outer, n, inner);
    } else if (rows_vectorizable<T>(n, {xp, yp})) {
      constexpr int V = kVec<T>;
      softmax_row_kernel<T, V, kLog>
          <<<blocks_for(outer, 1), fit_threads<softmax_row_kernel<T, V, kLog>>(n / V), 0, stream>>>(
              xp, yp, outer, n);
    } else {
      softmax_row_kernel<T, 1, kLog>
          <<<blocks_for(outer, 1), fit_threads<softmax_row_kernel<T, 1, kLog>>(n), 0, stream>>>(
              xp, yp, outer, n);
    }
    check_launch(name);
  });
}

template <bool kRms>
void run_norm(KernelContext& ctx, const ir::Node& node, std::span<const TensorView> in,
              std::span<TensorView> out) {
  const TensorView& x = in[0];
  if (x.numel() == 0) return;
  int64_t d = x.shape.back(), rows = x.numel() / d;
  const ops::NormParams params = ops::NormParams::decode(node);
  float eps = float(params.eps);
  bool has_weight = params.has_weight, has_bias = params.has_bias;
  const char* name = kRms ? "rms_norm" : "layer_norm";
  cudaStream_t stream = stream_of(ctx);
  dispatch_float(x.dtype, [&](auto tag) {
    using T = decltype(tag);
    const T* xp = x.as<const T>();
    T* yp = out[0].as<T>();
    const T* w = has_weight ? in[1].as<const T>() : nullptr;
    const T* b = has_bias ? in[has_weight ? 2 : 1].as<const T>() : nullptr;
    if (rows_vectorizable<T>(d, {xp, yp, w, b})) {
      constexpr int V = kVec<T>;
      norm_row_kernel<T, V, kRms>
          <<<blocks_for(rows, 1), fit_threads<norm_row_kernel<T, V, kRms>>(d / V), 0, stream>>>(
              xp, yp, w, b, rows, d, eps);
    } else {
      norm_row_kernel<T, 1, kRms>
          <<<blocks_for(rows, 1), fit_threads<norm_row_kernel<T, 1, kRms>>(d), 0, stream>>>(
              xp, yp, w, b, rows, d, eps);
    }
    check_launch(name);
  });
}

}  // namespace

void register_norm_kernels(Backend& b) {
  b.add_kernel("softmax", Kernel{"cuda.softmax", run_softmax<false>, nullptr});
  b.add_kernel("log_softmax", Kernel{"cuda.log_softmax", run_softmax<true>, nullptr});
  b.add_kernel("layer_norm", Kernel{"cuda.layer_norm", run_norm<false>, nullptr});
  b.add_kernel("rms_norm", Kernel{"cuda.rms_norm", run_norm<true>, nullptr});
}

}  // namespace loom::cuda
