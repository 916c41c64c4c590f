// Dense GEMV for matmul with few rows (decode): y [m, n] = x [m, k] W^T (+ bias), W stored
// [n, k] (a linear layer's weight), f16 or bf16 with f32 accumulation, m <= 8 per launch.
// Memory-bound: every weight byte is read once. One warp computes R output channels (rows of
// W) for all m rows of x, so each x value loaded serves R rows; its lanes stride over K in
// 16-byte loads (8 elements), the loads of U steps issued before any is used, weights read
// past L1 (ld.global.nc.L1::no_allocate) so x, which every warp of the SM reads, stays there.
// The warp's sums are reduced with shuffles and lane r * M + i writes output (r, i). Where W,
// x or K is not 16-byte aligned (odd K) the same kernel loads one element at a time.
//
// Launched as a programmatic dependent launch (device/pdl.cuh): with early_weights (no
// kernel of the run writes W), the first U steps of weight loads go out before the kernel
// waits for the previous kernel; x and the bias are read, and y written, after the wait.
#include <algorithm>
#include <span>
#include <type_traits>

#include "backends/cuda/cuda_error.h"
#include "backends/cuda/dense_gemv.h"
#include "backends/cuda/device/launch.cuh"
#include "backends/cuda/device/pdl.cuh"
#include "backends/cuda/device/types.cuh"
#include "backends/strided_views.h"
#include "ops/matmul_params.h"

namespace loom::cuda {

namespace {

constexpr int kWarps = 4;  // warps per block: small blocks spread a short N over 132 SMs

template <class T>
struct Pair;
template <>
struct Pair<half> {
  using type = __half2;
};
template <>
struct Pair<bf16> {
  using type = __nv_bfloat162;
};

__device__ __forceinline__ float2 to_float2(__half2 v) { return __half22float2(v); }
__device__ __forceinline__ float2 to_float2(__nv_bfloat162 v) { return __bfloat1622float2(v); }

// 16 bytes of the weight, read once: not allocated in L1.
__device__ __forceinline__ uint4 load_streaming(const void* p) {
  uint4 r;
  asm("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
      : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w)
      : "l"(p));
  return r;
}

// What one load brings: 16 bytes (8 elements) on the vector path, one element otherwise.
template <class T, bool V>
using Raw = std::conditional_t<V, uint4, T>;

template <class T, bool V>
__device__ __forceinline__ Raw<T, V> load_weight(const T* p) {
  if constexpr (V) {
    return load_streaming(p);
  } else {
    return __ldg(p);
  }
}

template <class T, bool V>
__device__ __forceinline__ Raw<T, V> load_x(const T* p) {
  if constexpr (V) {
    return __ldg(reinterpret_cast<const uint4*>(p));
  } else {
    return __ldg(p);
  }
}

template <class T, bool V>
__device__ __forceinline__ void unpack(const Raw<T, V>& raw, float (&f)[V ? 8 : 1]) {
  if constexpr (V) {
    using P = typename Pair<T>::type;
    const uint32_t words[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      P p;
      static_assert(sizeof(P) == 4);
      __builtin_memcpy(&p, &words[j], 4);
      const float2 v = to_float2(p);
      f[2 * j] = v.x;
      f[2 * j + 1] = v.y;
    }
  } else {
    f[0] = load(raw);
  }
}

template <class T, int M, int R, bool V>
__global__ void __launch_bounds__(kWarps * 32)
    dense_gemv_kernel(const T* __restrict__ w, const T* __restrict__ x, const T* __restrict__ bias,
                      T* __restrict__ y, int64_t n, int64_t k, int m, bool early_weights) {
  constexpr int E = V ? 8 : 1;  // elements per load
  constexpr int U = V ? 4 : 8;  // steps of loads issued before any is used
  const int lane = int(threadIdx.x) % 32;
  const int64_t row0 = (int64_t(blockIdx.x) * kWarps + int(threadIdx.x) / 32) * R;
  if (row0 >= n) return;  // reads and writes nothing
  const T* rows[R];
#pragma unroll
  for (int r = 0; r < R; ++r) rows[r] = w + min(row0 + r, n - 1) * k;  // past n: row0's again
  const int64_t steps = k / E;                                         // V: k % 8 == 0
  float acc[R][M];
#pragma unroll
  for (int r = 0; r < R; ++r)
#pragma unroll
    for (int i = 0; i < M; ++i) acc[r][i] = 0.f;
  bool waited = !early_weights;
  if (waited) {
    pdl_wait();
    pdl_release();
  }
  for (int64_t s0 = 0; s0 < steps; s0 += 32 * U) {
    Raw<T, V> wv[U][R];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int64_t s = s0 + u * 32 + lane;
#pragma unroll
      for (int r = 0; r < R; ++r)
        if (s < steps) wv[u][r] = load_weight<T, V>(rows[r] + s * E);
    }
    if (!waited) {  // x comes from earlier kernels
      pdl_wait();
      pdl_release();
      waited = true;
    }
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int64_t s = s0 + u * 32 + lane;
      if (s >= steps) break;
      float wf[R][E];
#pragma unroll
      for (int r = 0; r < R; ++r) unpack<T, V>(wv[u][r], wf[r]);
#pragma unroll
      for (int i = 0; i < M; ++i) {
        if (i >= m) break;
        float xf[E];
        unpack<T, V>(load_x<T, V>(x + int64_t(i) * k + s * E), xf);
#pragma unroll
        for (int r = 0; r < R; ++r)
#pragma unroll
          for (int e = 0; e < E; ++e) acc[r][i] = fmaf(wf[r][e], xf[e], acc[r][i]);
      }
    }
  }
  if (!waited) {  // k == 0: nothing loaded, but y is written below
    pdl_wait();
    pdl_release();
  }
#pragma unroll
  for (int r = 0; r < R; ++r)
#pragma unroll
    for (int i = 0; i < M; ++i)
#pragma unroll
      for (int offset = 16; offset > 0; offset /= 2)
        acc[r][i] += __shfl_xor_sync(0xffffffffu, acc[r][i], offset);
#pragma unroll
  for (int r = 0; r < R; ++r)
#pragma unroll
    for (int i = 0; i < M; ++i)
      if (lane == r * M + i && i < m && row0 + r < n) {
        float v = acc[r][i];
        if (bias) v += load(bias[row0 + r]);
        y[int64_t(i) * n + row0 + r] = store_as<T>(v);
      }
}

template <class T, int M>
void launch(const T* x, const T* w, const T* bias, T* y, int m, int64_t n, int64_t k,
            bool early_weights, cudaStream_t stream) {
  // Two rows per warp from 4 rows of x on: each x load then serves two weight rows.
  constexpr int R = M >= 4 ? 2 : 1;
  const bool vec = k % 8 == 0 && aligned16(x) && aligned16(w);
  const unsigned grid = blocks_for(n, int64_t(kWarps) * R);
  auto go = [&](auto kernel) {
    check_cuda(launch_pdl(kernel, dim3(grid), dim3(kWarps * 32), 0, stream, w, x, bias, y, n, k, m,
                          early_weights),
               "matmul (GEMV) launch");
  };
  if (vec)
    go(dense_gemv_kernel<T, M, R, true>);
  else
    go(dense_gemv_kernel<T, M, R, false>);
}

void run_dense_gemv(KernelContext& ctx, const ir::Node&, std::span<const TensorView> in,
                    std::span<TensorView> out) {
  const TensorView& c = out[0];
  if (c.numel() == 0) return;
  const TensorView &a = in[0], &b = in[1];
  const int64_t k = a.shape.back(), n = c.shape.back();
  dense_gemv(c.dtype, a.data, b.data, in.size() == 3 ? in[2].data : nullptr, c.data, c.numel() / n,
             n, k, ctx.input_invariant(1), ctx.stream);
}

}  // namespace

void dense_gemv(DType dtype, const void* x, const void* w, const void* bias, void* y, int64_t m,
                int64_t n, int64_t k, bool early_weights, void* stream) {
  if (m == 0 || n == 0) return;
  auto s = static_cast<cudaStream_t>(stream);
  auto typed = [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_same_v<T, half> || std::is_same_v<T, bf16>) {
      const size_t elem = sizeof(T);
      for (int64_t r = 0; r < m; r += 8) {
        const int rows = int(std::min<int64_t>(8, m - r));
        auto* xr = reinterpret_cast<const T*>(static_cast<const char*>(x) + size_t(r * k) * elem);
        auto* yr = reinterpret_cast<T*>(static_cast<char*>(y) + size_t(r * n) * elem);
        auto* wt = static_cast<const T*>(w);
        auto* bt = static_cast<const T*>(bias);
        if (rows == 1)
          launch<T, 1>(xr, wt, bt, yr, rows, n, k, early_weights, s);
        else if (rows == 2)
          launch<T, 2>(xr, wt, bt, yr, rows, n, k, early_weights, s);
        else if (rows <= 4)
          launch<T, 4>(xr, wt, bt, yr, rows, n, k, early_weights, s);
        else
          launch<T, 8>(xr, wt, bt, yr, rows, n, k, early_weights, s);
      }
    } else {
      fail(ErrorKind::dtype, std::string("matmul GEMV: f16 or bf16, got ") + dtype_name(dtype));
    }
  };
  dispatch_float(dtype, typed);
}

bool dense_gemv_supports(const ir::Node& node, std::span<const TensorView> in) {
  if (in.size() < 2) return false;
  const TensorView &a = in[0], &b = in[1];
  if (a.dtype != DType::f16 && a.dtype != DType::bf16) return false;
  for (const TensorView& v : in)
    if (v.dtype != a.dtype) return false;
  if (a.shape.size() < 2 || b.shape.size() != 2 || !matmul_reads_views(in)) return false;
  const ops::MatmulParams p = ops::MatmulParams::decode(node);
  // x's rows as stored; W's bytes [N, K] row-major (x W^T).
  if (p.transpose_a || !is_contiguous(a) || !operand_transposed(p.transpose_b, b)) return false;
  const int64_t k = a.shape.back();
  if (k <= 0 || (p.transpose_b ? b.shape[1] : b.shape[0]) != k) return false;
  return a.numel() / k <= 8;
}

Kernel dense_gemv_kernel() {
  return Kernel{kDenseGemvName, run_dense_gemv, dense_gemv_supports, nullptr, true};
}

}  // namespace loom::cuda
