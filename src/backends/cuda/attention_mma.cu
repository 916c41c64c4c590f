// scaled_dot_product_attention on tensor cores for prefill ("cuda.attention.mma"): f16 and
// bf16, head dims 64 and 128, causal / kv_len / window (no mask input), any GQA ratio.
// FlashAttention-2's scheme with mma.sync: a block of 4 warps takes 64 query rows of one
// head, each warp 16 of them with q kept in registers as mma fragments. Per tile of 64 keys:
// S = q kᵀ (m16n8k16, f32 accumulators), the online softmax on S in registers (each row's
// four lanes reduce with shuffles), P rounded to q's dtype and O += P v with P taken straight
// from the S accumulators as the A operand. K and V tiles come in by cp.async into
// XOR-swizzled shared memory (ldmatrix reads 8 rows of 16 bytes at distinct banks); V's tile
// loads while S is computed, the next K tile while the softmax and P v run. Keys past the
// block's last visible one are zero-filled, never read, so an unwritten cache tail (NaN bits)
// cannot leak through 0 x NaN. Shared memory: 3 tiles of 64 x D (24 or 48 KB).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>

#include "backends/cuda/attention_kernels.h"
#include "backends/cuda/cuda_error.h"
#include "backends/cuda/device/launch.cuh"
#include "backends/cuda/device/pdl.cuh"
#include "backends/cuda/device/types.cuh"

namespace loom::cuda {

namespace {

constexpr int kRows = 64;      // query rows a block
constexpr int kKeys = 64;      // keys a tile
constexpr int kThreads = 128;  // 4 warps of 16 rows
constexpr float kLog2e = 1.4426950408889634f;

struct MmaParams {
  const void* q;
  const void* k;
  const void* v;
  void* out;
  const void* kv_len;
  bool kv_len_i64;
  bool kv_len_per_batch;
  bool causal;
  int64_t window;
  float scale_log2;
  int q_heads, kv_heads, group, q_len, kv_cap, m_blocks;
};

// Element offset of (row, col) in a [rows, D] tile whose 16-byte chunks are XOR-swizzled by
// the row's low 3 bits; col is a multiple of 8.
template <int D>
__device__ __forceinline__ int swizzled(int row, int col) {
  return row * D + ((((col >> 3) ^ (row & 7))) << 3);
}

__device__ __forceinline__ unsigned shared_address(const void* p) {
  return unsigned(__cvta_generic_to_shared(p));
}

// 16 bytes global -> shared; src_bytes 0 writes zeros (and reads nothing).
__device__ __forceinline__ void cp_async16_fill(void* dst, const void* src, int src_bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(shared_address(dst)), "l"(src),
               "r"(src_bytes)
               : "memory");
}
__device__ __forceinline__ void cp_async_commit() {
  asm volatile("cp.async.commit_group;" ::: "memory");
}
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;" ::"n"(N) : "memory");
}

__device__ __forceinline__ void ldmatrix_x4(uint32_t r[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(shared_address(p)));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t r[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(shared_address(p)));
}

// c += a b for one m16n8k16 tile, f32 accumulators.
template <class T>
__device__ __forceinline__ void mma16816(float c[4], const uint32_t a[4], uint32_t b0,
                                         uint32_t b1) {
  if constexpr (std::is_same_v<T, bf16>) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
        "{%8, %9}, {%0, %1, %2, %3};"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  } else {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
        "{%8, %9}, {%0, %1, %2, %3};"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
}

// Two floats as two T in one 32-bit word, the first in the low half.
template <class T>
__device__ __forceinline__ uint32_t pack2(float lo, float hi) {
  uint32_t w;
  if constexpr (std::is_same_v<T, bf16>) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    memcpy(&w, &v, sizeof(w));
  } else {
    __half2 v = __floats2half2_rn(lo, hi);
    memcpy(&w, &v, sizeof(w));
  }
  return w;
}

// Rows [0, 64) of a [*, D] matrix at `src` into a swizzled tile; rows >= valid are zeros.
template <class T, int D>
__device__ __forceinline__ void load_tile(T* tile, const T* src, int valid) {
  constexpr int kChunks = D / 8;  // 16-byte chunks a row
  for (int e = threadIdx.x; e < kRows * kChunks; e += kThreads) {
    const int row = e / kChunks, col = (e - row * kChunks) * 8;
    const bool in = row < valid;
    cp_async16_fill(tile + swizzled<D>(row, col), src + (in ? int64_t(row) * D + col : 0),
                    in ? 16 : 0);
  }
}

__device__ __forceinline__ int keys_in_use(const MmaParams& p, int b) {
  if (!p.kv_len) return p.kv_cap;
  const int at = p.kv_len_per_batch ? b : 0;
  const int64_t n = p.kv_len_i64 ? static_cast<const int64_t*>(p.kv_len)[at]
                                 : int64_t(static_cast<const int32_t*>(p.kv_len)[at]);
  return int(min(max(n, int64_t(0)), int64_t(p.kv_cap)));
}

template <class T, int D>
__global__ void __launch_bounds__(kThreads) attention_mma_kernel(MmaParams p) {
  extern __shared__ __align__(128) unsigned char smem[];
  T* qs = reinterpret_cast<T*>(smem);
  T* ks = qs + kRows * D;
  T* vs = ks + kKeys * D;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const float kNegInf = -std::numeric_limits<float>::infinity();
  // Everything below reads what earlier kernels wrote (q, the cache, kv_len).
  pdl_wait();
  pdl_release();

  // The last query blocks of a causal head see the most keys: they start first.
  int blk = blockIdx.x;
  const int mb = p.m_blocks - 1 - blk % p.m_blocks;
  blk /= p.m_blocks;
  const int h = blk % p.q_heads, b = blk / p.q_heads;
  const int kvh = h / p.group;
  const int s0 = mb * kRows;
  const int keys = keys_in_use(p, b);
  const int shift = keys - p.q_len;  // query s sits at key position s + shift
  int k_end = keys;
  if (p.causal) k_end = min(k_end, min(s0 + kRows, p.q_len) - 1 + shift + 1);
  int k_begin = 0;
  if (p.window > 0) k_begin = int(max(int64_t(0), int64_t(s0 + shift) - p.window + 1));

  const T* qg = static_cast<const T*>(p.q) + ((int64_t(b) * p.q_heads + h) * p.q_len + s0) * D;
  const int64_t kv_base = (int64_t(b) * p.kv_heads + kvh) * p.kv_cap * D;
  const T* kg = static_cast<const T*>(p.k) + kv_base;
  const T* vg = static_cast<const T*>(p.v) + kv_base;

  load_tile<T, D>(qs, qg, min(kRows, p.q_len - s0));
  if (k_begin < k_end) load_tile<T, D>(ks, kg + int64_t(k_begin) * D, min(kKeys, k_end - k_begin));
  cp_async_commit();
  cp_async_wait<0>();
  __syncthreads();

  // This warp's 16 rows of q as A fragments over D.
  uint32_t qf[D / 16][4];
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk)
    ldmatrix_x4(qf[kk], qs + swizzled<D>(warp * 16 + (lane & 15), kk * 16 + (lane >> 4) * 8));

  float o[D / 8][4];
#pragma unroll
  for (int i = 0; i < D / 8; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.f;
  float row_max[2] = {kNegInf, kNegInf}, row_sum[2] = {0.f, 0.f};
  // Positions (as keys) of this lane's two rows: lane / 4 and lane / 4 + 8 of the warp's 16.
  const int pos[2] = {s0 + warp * 16 + (lane >> 2) + shift,
                      s0 + warp * 16 + (lane >> 2) + 8 + shift};

  for (int j0 = k_begin; j0 < k_end; j0 += kKeys) {
    // K of this tile has landed (waited below or before the loop); V's loads start now.
    load_tile<T, D>(vs, vg + int64_t(j0) * D, min(kKeys, k_end - j0));
    cp_async_commit();

    float s[kKeys / 8][4];
#pragma unroll
    for (int i = 0; i < kKeys / 8; ++i) s[i][0] = s[i][1] = s[i][2] = s[i][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
#pragma unroll
      for (int nb = 0; nb < kKeys / 16; ++nb) {
        uint32_t kf[4];
        ldmatrix_x4(kf, ks + swizzled<D>(nb * 16 + (lane >> 4) * 8 + (lane & 7),
                                         kk * 16 + ((lane >> 3) & 1) * 8));
        mma16816<T>(s[2 * nb], qf[kk], kf[0], kf[1]);
        mma16816<T>(s[2 * nb + 1], qf[kk], kf[2], kf[3]);
      }
    }
    __syncthreads();  // every warp is done with this K tile
    const bool more = j0 + kKeys < k_end;
    if (more) load_tile<T, D>(ks, kg + int64_t(j0 + kKeys) * D, min(kKeys, k_end - j0 - kKeys));
    cp_async_commit();

    // Scale into the log2 domain and hide what this row may not see.
#pragma unroll
    for (int nb = 0; nb < kKeys / 8; ++nb)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int key = j0 + nb * 8 + (lane & 3) * 2 + (e & 1);
        const int at = pos[e >> 1];
        const bool visible = key < k_end && (!p.causal || key <= at) &&
                             (p.window <= 0 || int64_t(key) > int64_t(at) - p.window);
        s[nb][e] = visible ? s[nb][e] * p.scale_log2 : kNegInf;
      }
      // Online softmax over the tile, per row (lanes 4i..4i+3 hold row i's 64 scores).
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float mx = kNegInf;
#pragma unroll
      for (int nb = 0; nb < kKeys / 8; ++nb) mx = fmaxf(mx, fmaxf(s[nb][2 * r], s[nb][2 * r + 1]));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      const float m_new = fmaxf(row_max[r], mx);
      const float m_use = m_new == kNegInf ? 0.f : m_new;  // nothing visible yet: p = 0
      const float alpha = exp2f(row_max[r] - m_use);
      float sum = 0.f;
#pragma unroll
      for (int nb = 0; nb < kKeys / 8; ++nb) {
        s[nb][2 * r] = exp2f(s[nb][2 * r] - m_use);
        s[nb][2 * r + 1] = exp2f(s[nb][2 * r + 1] - m_use);
        sum += s[nb][2 * r] + s[nb][2 * r + 1];
      }
      sum += __shfl_xor_sync(0xffffffffu, sum, 1);
      sum += __shfl_xor_sync(0xffffffffu, sum, 2);
      row_sum[r] = row_sum[r] * alpha + sum;
      row_max[r] = m_new;
#pragma unroll
      for (int i = 0; i < D / 8; ++i) {
        o[i][2 * r] *= alpha;
        o[i][2 * r + 1] *= alpha;
      }
    }

    // V of this tile (the next K may still be in flight).
    cp_async_wait<1>();
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kKeys / 16; ++kk) {
      const uint32_t a[4] = {pack2<T>(s[2 * kk][0], s[2 * kk][1]),
                             pack2<T>(s[2 * kk][2], s[2 * kk][3]),
                             pack2<T>(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                             pack2<T>(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
      for (int db = 0; db < D / 16; ++db) {
        uint32_t vf[4];
        ldmatrix_x4_trans(vf, vs + swizzled<D>(kk * 16 + (lane & 15), db * 16 + (lane >> 4) * 8));
        mma16816<T>(o[2 * db], a, vf[0], vf[1]);
        mma16816<T>(o[2 * db + 1], a, vf[2], vf[3]);
      }
    }
    cp_async_wait<0>();  // the next K tile
    __syncthreads();     // and every warp is done with this V tile
  }

  // O / l, rows past the query length not written; a row that saw no key gives zeros.
  T* out = static_cast<T*>(p.out) + (int64_t(b) * p.q_heads + h) * int64_t(p.q_len) * D;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int s = s0 + warp * 16 + (lane >> 2) + 8 * r;
    if (s >= p.q_len) continue;
    const float inv = row_sum[r] > 0.f ? 1.f / row_sum[r] : 0.f;
    T* dst = out + int64_t(s) * D + (lane & 3) * 2;
#pragma unroll
    for (int i = 0; i < D / 8; ++i)
      *reinterpret_cast<uint32_t*>(dst + i * 8) =
          pack2<T>(o[i][2 * r] * inv, o[i][2 * r + 1] * inv);
  }
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

template <class T, int D>
void launch_mma(KernelContext& ctx, const ir::Node& node, std::span<const TensorView> in,
                TensorView& out) {
  const TensorView& q = in[0];
  const TensorView& k = in[1];
  MmaParams p{};
  p.q = q.data;
  p.k = k.data;
  p.v = in[2].data;
  p.out = out.data;
  const int batch = int(q.shape[0]);
  p.q_heads = int(q.shape[1]);
  p.q_len = int(q.shape[2]);
  p.kv_heads = int(k.shape[1]);
  p.kv_cap = int(k.shape[2]);
  p.group = p.q_heads / p.kv_heads;
  p.m_blocks = (p.q_len + kRows - 1) / kRows;
  const double scale = node.attrs.get_or<double>("scale", 1.0 / std::sqrt(double(D)));
  p.scale_log2 = float(scale * double(kLog2e));
  p.causal = node.attrs.get_or<bool>("causal", false);
  p.window = node.attrs.get_or<int64_t>("window", 0);
  if (node.attrs.get_or<bool>("has_kv_len", false)) {
    const TensorView& kv_len = in[3];  // no mask input: supports() refuses one
    p.kv_len = kv_len.data;
    p.kv_len_i64 = kv_len.dtype == DType::i64;
    p.kv_len_per_batch = kv_len.numel() > 1;
  }
  const size_t shared = size_t(kRows + 2 * kKeys) * D * sizeof(T);
  const int64_t blocks = int64_t(batch) * p.q_heads * p.m_blocks;
  check_cuda(launch_pdl(attention_mma_kernel<T, D>, dim3(unsigned(blocks)), dim3(kThreads), shared,
                        stream_of(ctx), p),
             "scaled_dot_product_attention (mma) launch");
  check_launch("scaled_dot_product_attention (mma)");
}

// f16 / bf16 q, k and v, D 64 or 128, no mask, more query rows than decode takes, sizes
// within the kernel's int indexing and its grid.
bool fits_mma(const ir::Node& node, std::span<const TensorView> in) {
  const TensorView& q = in[0];
  const TensorView& k = in[1];
  if (q.dtype != DType::f16 && q.dtype != DType::bf16) return false;
  // K and V in q's dtype (an int8 cache takes the CUDA-core kernels) and no mask: kv_len is
  // then the only optional input.
  if (k.dtype != q.dtype || in[2].dtype != q.dtype) return false;
  if (node.attrs.get_or<bool>("has_mask", false) || node.attrs.get_or<bool>("has_k_scale", false) ||
      node.attrs.get_or<bool>("has_v_scale", false))
    return false;
  const int64_t d = q.shape[3];
  if (d != 64 && d != 128) return false;
  if (q.shape[2] <= kDecodeQueries) return false;
  const int64_t limit = std::numeric_limits<int>::max();
  const int64_t blocks = q.shape[0] * q.shape[1] * ((q.shape[2] + kRows - 1) / kRows);
  return k.shape[2] < limit && q.shape[2] < limit && blocks < limit &&
         q.shape[1] * q.shape[2] < limit;
}

void run_mma(KernelContext& ctx, const ir::Node& node, std::span<const TensorView> in,
             std::span<TensorView> out) {
  if (out[0].numel() == 0) return;
  // Views at odd offsets cannot take 16-byte copies: the CUDA-core kernel serves them.
  if (!aligned16(in[0].data) || !aligned16(in[1].data) || !aligned16(in[2].data) ||
      !aligned16(out[0].data))
    return run_attention_tiled(ctx, node, in, out);
  const bool d64 = in[0].shape[3] == 64;
  if (in[0].dtype == DType::bf16)
    d64 ? launch_mma<bf16, 64>(ctx, node, in, out[0])
        : launch_mma<bf16, 128>(ctx, node, in, out[0]);
  else
    d64 ? launch_mma<half, 64>(ctx, node, in, out[0])
        : launch_mma<half, 128>(ctx, node, in, out[0]);
}

}  // namespace

Kernel attention_mma_kernel() { return Kernel{"cuda.attention.mma", run_mma, fits_mma}; }

}  // namespace loom::cuda
