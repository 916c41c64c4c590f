// scaled_dot_product_attention on CUDA. One kernel, two launch shapes:
//  - decode (Sq <= 8, "cuda.attention.split_kv"): flash-decoding. The keys are split into
//    chunks, one block per (batch, kv head, chunk) holding every query row of the kv head's
//    group (G heads x Sq positions), so each K/V byte is read from memory once; the last
//    chunk of a group to finish merges the chunks' partial softmax states (one launch).
//  - prefill ("cuda.attention.tiled"): the same block without splitting, over tiles of query
//    rows (online softmax, f32 accumulation; no tensor cores yet).
// K/V tiles come in through 16-byte loads into shared memory (rows padded by 16 bytes so the
// 16-byte reads of the dot products hit distinct banks). Scores live in the log2 domain
// (scale * log2 e folded into q) so exp2f does the exponentials. kv_len is read on the
// device, so a captured decode step replays correctly at every length. An int8 KV cache (i8
// K/V, an f32 scale per key) is read as it is: 16 codes per 16-byte load, the key's scale
// applied to its score and folded into its softmax weight for V.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>

#include "backends/cuda/attention_kernels.h"
#include "backends/cuda/cuda_error.h"
#include "backends/cuda/cuda_kernels.h"
#include "backends/cuda/device/launch.cuh"
#include "backends/cuda/device/pdl.cuh"
#include "backends/cuda/device/types.cuh"

namespace loom::cuda {

namespace {

constexpr int kAttnThreads = 128;
constexpr int kAccPerThread = 16;                           // registers of accumulators
constexpr int kMaxBlockAcc = kAttnThreads * kAccPerThread;  // rows x D per block
constexpr int kKvTileBytes = 24 * 1024;                     // K + V tile in shared memory
constexpr int kMaxKeyTile = 64;
constexpr int kMaxBlockRows = 64;
constexpr int kMinPrefillBlockRows = 8;
constexpr size_t kMaxSharedBytes = 48 * 1024;  // the default limit, no opt-in needed
constexpr int kMaxDim = 512;
constexpr int kMinKeysPerSplit = 16;
constexpr float kLog2e = 1.4426950408889634f;

struct Params {
  const void* q;
  const void* k;
  const void* v;
  void* out;
  float* partial_acc;  // [splits, B * Hq * Sq, D]; null when splits == 1
  float* partial_ml;   // [splits, B * Hq * Sq, 2]: running max (log2) and sum
  unsigned* arrivals;  // per (batch, kv head, row chunk): splits done; zero between launches
  const void* mask;
  int64_t mask_stride[4];
  bool mask_bool;
  const void* kv_len;
  const float* k_scale;  // int8 K/V: f32 [B, Hkv, Skv]; null for float K/V
  const float* v_scale;
  bool kv_len_i64;
  bool kv_len_per_batch;
  bool vec16;  // K/V rows can be loaded 16 bytes at a time
  bool causal;
  int64_t window;
  float scale_log2;
  int batch, q_heads, kv_heads, group, q_len, kv_cap, dim;
  int dim_padded;  // dim rounded up to a 16-byte vector
  int k_stride;    // shared-memory row stride of K: dim_padded + one vector
  int key_tile;
  int rows_total;  // group * q_len, position-major
  int rows_per_block, row_chunks;
  int splits, keys_per_split;
};

// Shared memory: q rows (f32), scores, per-row m / l / alpha, the K and V scales of the tile
// (int8 K/V only), then the K and V tiles (of KV, the K/V element type).
struct Layout {
  size_t q, scores, rows, scales, k, v, bytes;
};

template <class KV>
__host__ __device__ Layout layout_of(const Params& p) {
  Layout l{};
  size_t at = 0;
  auto take = [&](size_t bytes) {
    size_t start = at;
    at = (at + bytes + 15) / 16 * 16;
    return start;
  };
  l.q = take(size_t(p.rows_per_block) * p.dim_padded * sizeof(float));
  l.scores = take(size_t(p.rows_per_block) * p.key_tile * sizeof(float));
  l.rows = take(size_t(p.rows_per_block) * 3 * sizeof(float));
  l.scales = take(std::is_same_v<KV, int8_t> ? size_t(p.key_tile) * 2 * sizeof(float) : 0);
  l.k = take(size_t(p.key_tile) * p.k_stride * sizeof(KV));
  l.v = take(size_t(p.key_tile) * p.dim_padded * sizeof(KV));
  l.bytes = at;
  return l;
}

__device__ __forceinline__ void add_products(const float4& a, const float4& b, float& sum) {
  sum = fmaf(a.x, b.x, sum);
  sum = fmaf(a.y, b.y, sum);
  sum = fmaf(a.z, b.z, sum);
  sum = fmaf(a.w, b.w, sum);
}

// Two 16-bit elements packed in one 32-bit word, as floats (bf16 is the top half of an f32).
template <class T>
__device__ __forceinline__ float2 unpack2(uint32_t w) {
  if constexpr (std::is_same_v<T, bf16>) {
    return make_float2(__uint_as_float(w << 16), __uint_as_float(w & 0xffff0000u));
  } else {
    __half2 h;
    static_assert(sizeof(h) == sizeof(w));
    memcpy(&h, &w, sizeof(w));
    return __half22float2(h);
  }
}

template <class T>
__device__ __forceinline__ float4 unpack4(uint32_t lo, uint32_t hi) {
  float2 a = unpack2<T>(lo), b = unpack2<T>(hi);
  return make_float4(a.x, a.y, b.x, b.y);
}

// Four int8 codes packed in one 32-bit word (little-endian), as floats.
__device__ __forceinline__ float4 unpack_i8x4(uint32_t w) {
  return make_float4(float(int(w << 24) >> 24), float(int(w << 16) >> 24), float(int(w << 8) >> 24),
                     float(int(w) >> 24));
}

// q (f32, 16-byte aligned) . k (T, 16-byte aligned), both padded with zeros to `n`, a
// multiple of the vector width.
template <class T>
__device__ __forceinline__ float dot_row(const float* q, const T* k, int n) {
  float sum = 0.f;
  constexpr int kV = kVec<T>;
  for (int d = 0; d < n; d += kV) {
    uint4 raw = *reinterpret_cast<const uint4*>(k + d);
    const float4* qv = reinterpret_cast<const float4*>(q + d);
    if constexpr (std::is_same_v<T, float>) {
      add_products(qv[0],
                   make_float4(__uint_as_float(raw.x), __uint_as_float(raw.y),
                               __uint_as_float(raw.z), __uint_as_float(raw.w)),
                   sum);
    } else if constexpr (std::is_same_v<T, int8_t>) {
      add_products(qv[0], unpack_i8x4(raw.x), sum);
      add_products(qv[1], unpack_i8x4(raw.y), sum);
      add_products(qv[2], unpack_i8x4(raw.z), sum);
      add_products(qv[3], unpack_i8x4(raw.w), sum);
    } else {
      add_products(qv[0], unpack4<T>(raw.x, raw.y), sum);
      add_products(qv[1], unpack4<T>(raw.z, raw.w), sum);
    }
  }
  return sum;
}

// 16 bytes global -> shared without passing through registers, so a tile's loads are in
// flight while the block does other work; cp_async_wait_all waits for this thread's copies.
__device__ __forceinline__ void cp_async16(void* shared, const void* global) {
  const unsigned at = unsigned(__cvta_generic_to_shared(shared));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(at), "l"(global) : "memory");
}

__device__ __forceinline__ void cp_async_wait_all() {
  asm volatile("cp.async.wait_all;" ::: "memory");
}

__device__ __forceinline__ int valid_keys(const Params& p, int b) {
  if (!p.kv_len) return p.kv_cap;
  int at = p.kv_len_per_batch ? b : 0;
  int64_t n = p.kv_len_i64 ? static_cast<const int64_t*>(p.kv_len)[at]
                           : int64_t(static_cast<const int32_t*>(p.kv_len)[at]);
  return int(min(max(n, int64_t(0)), int64_t(p.kv_cap)));
}

template <class T>
__device__ __forceinline__ float mask_log2(const Params& p, int b, int h, int s, int j) {
  int64_t at =
      b * p.mask_stride[0] + h * p.mask_stride[1] + s * p.mask_stride[2] + j * p.mask_stride[3];
  if (p.mask_bool)
    return static_cast<const bool*>(p.mask)[at] ? 0.f : -std::numeric_limits<float>::infinity();
  return load(static_cast<const T*>(p.mask)[at]) * kLog2e;
}

// T: q's (and the output's) element type; KV: k's and v's, T or int8_t (then k_scale and
// v_scale are set).
template <class T, class KV>
__global__ void __launch_bounds__(kAttnThreads) attention_kernel(Params p) {
  constexpr bool kInt8 = std::is_same_v<KV, int8_t>;
  extern __shared__ __align__(16) unsigned char smem[];
  const Layout lay = layout_of<KV>(p);
  float* qs = reinterpret_cast<float*>(smem + lay.q);
  float* sc = reinterpret_cast<float*>(smem + lay.scores);
  float* row_m = reinterpret_cast<float*>(smem + lay.rows);
  float* row_l = row_m + p.rows_per_block;
  float* row_alpha = row_l + p.rows_per_block;
  KV* ks = reinterpret_cast<KV*>(smem + lay.k);
  KV* vs = reinterpret_cast<KV*>(smem + lay.v);
  float* k_sc = reinterpret_cast<float*>(smem + lay.scales);  // int8 only: the tile's scales
  float* v_sc = k_sc + p.key_tile;
  const float kNegInf = -std::numeric_limits<float>::infinity();
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  // Everything below reads what earlier kernels wrote (q, the cache, kv_len).
  pdl_wait();
  pdl_release();

  int64_t blk = blockIdx.x;
  const int chunk = int(blk % p.row_chunks);
  blk /= p.row_chunks;
  const int split = int(blk % p.splits);
  blk /= p.splits;
  const int kvh = int(blk % p.kv_heads), b = int(blk / p.kv_heads);
  const int row0 = chunk * p.rows_per_block;
  const int rows = min(p.rows_per_block, p.rows_total - row0);
  const int G = p.group, D = p.dim, Dp = p.dim_padded, Tk = p.key_tile;

  const int keys = valid_keys(p, b);
  const int shift = keys - p.q_len;  // query s sits at key position s + shift
  // The splits share the keys in use, not the capacity: kv_len is known only here, and a
  // decode step at 100 keys of a 2048-key cache would otherwise give them all to split 0.
  // Chunks of at least kMinKeysPerSplit keys, so short contexts use fewer splits.
  int per_split = p.keys_per_split;
  if (p.splits > 1) {
    per_split = (keys + p.splits - 1) / p.splits;
    per_split = max(kMinKeysPerSplit,
                    (per_split + kMinKeysPerSplit - 1) / kMinKeysPerSplit * kMinKeysPerSplit);
  }
  int k_begin = split * per_split;
  int k_end = min(keys, k_begin + per_split);
  if (p.causal) k_end = min(k_end, (row0 + rows - 1) / G + shift + 1);
  if (p.window > 0) k_begin = int(max(int64_t(k_begin), int64_t(row0 / G + shift) - p.window + 1));

  const int64_t kv_base = (int64_t(b) * p.kv_heads + kvh) * p.kv_cap * D;
  const KV* kg = static_cast<const KV*>(p.k) + kv_base;
  const KV* vg = static_cast<const KV*>(p.v) + kv_base;
  const int64_t scale_base = (int64_t(b) * p.kv_heads + kvh) * p.kv_cap;
  // A K/V tile into shared memory: asynchronous copies when rows are 16-byte vectors (the
  // first tile's are in flight while q is staged), else plain loads.
  auto load_tile = [&](int j0, int n) {
    if constexpr (kInt8) {
      for (int j = tid; j < n; j += kAttnThreads) {
        k_sc[j] = p.k_scale[scale_base + j0 + j];
        v_sc[j] = p.v_scale[scale_base + j0 + j];
      }
    }
    if (p.vec16) {
      constexpr int kV = kVec<KV>;
      const int per_row = D / kV;
      for (int e = tid; e < n * per_row; e += kAttnThreads) {
        int j = e / per_row, c = (e - j * per_row) * kV;
        int64_t from = int64_t(j0 + j) * D + c;
        cp_async16(ks + j * p.k_stride + c, kg + from);
        cp_async16(vs + j * Dp + c, vg + from);
      }
    } else {
      for (int e = tid; e < n * D; e += kAttnThreads) {
        int j = e / D, d = e - j * D;
        ks[j * p.k_stride + d] = kg[int64_t(j0 + j) * D + d];
        vs[j * Dp + d] = vg[int64_t(j0 + j) * D + d];
      }
    }
  };
  if (k_begin < k_end) load_tile(k_begin, min(Tk, k_end - k_begin));

  // q rows, scaled into the log2 domain and zero-padded to Dp.
  const T* q = static_cast<const T*>(p.q);
  for (int e = tid; e < rows * Dp; e += kAttnThreads) {
    int r = e / Dp, d = e - r * Dp, rr = row0 + r;
    int s = rr / G, h = kvh * G + rr % G;
    qs[e] =
        d < D ? load(q[((int64_t(b) * p.q_heads + h) * p.q_len + s) * D + d]) * p.scale_log2 : 0.f;
  }
  // Padding columns of the K tile stay zero for every tile.
  for (int e = tid; e < Tk * (Dp - D); e += kAttnThreads) {
    int j = e / (Dp - D);
    ks[j * p.k_stride + D + (e - j * (Dp - D))] = KV(0.f);
  }
  for (int r = tid; r < rows; r += kAttnThreads) {
    row_m[r] = kNegInf;
    row_l[r] = 0.f;
  }
  float acc[kAccPerThread];
#pragma unroll
  for (int i = 0; i < kAccPerThread; ++i) acc[i] = 0.f;
  if (k_begin >= k_end) __syncthreads();  // no tile: the row state must still be seen

  for (int j0 = k_begin; j0 < k_end; j0 += Tk) {
    const int n = min(Tk, k_end - j0);
    if (j0 != k_begin) load_tile(j0, n);  // the first was issued before q was staged
    cp_async_wait_all();
    __syncthreads();

    for (int e = tid; e < rows * Tk; e += kAttnThreads) {
      int r = e / Tk, j = e - r * Tk;
      float x = kNegInf;
      if (j < n) {
        int key = j0 + j, rr = row0 + r;
        int s = rr / G, h = kvh * G + rr % G;
        int pos = s + shift;
        bool visible = (!p.causal || key <= pos) && (p.window <= 0 || key > pos - p.window);
        if (visible) {
          x = dot_row(qs + r * Dp, ks + j * p.k_stride, Dp);
          if constexpr (kInt8) x *= k_sc[j];
          if (p.mask) x += mask_log2<T>(p, b, h, s, key);
        }
      }
      sc[e] = x;
    }
    __syncthreads();

    // Online softmax: one warp per row.
    for (int r = warp; r < rows; r += kAttnThreads / 32) {
      float mx = kNegInf;
      for (int j = lane; j < n; j += 32) mx = fmaxf(mx, sc[r * Tk + j]);
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
      float m_old = row_m[r];
      float m_new = fmaxf(m_old, mx);
      float m_use = m_new == kNegInf ? 0.f : m_new;  // no visible key yet: p = 0
      float sum = 0.f;
      for (int j = lane; j < n; j += 32) {
        float pj = exp2f(sc[r * Tk + j] - m_use);
        sc[r * Tk + j] = kInt8 ? pj * v_sc[j] : pj;  // the weight of V's codes
        sum += pj;
      }
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
      // Every lane has read row_m[r] above; the barrier says so to racecheck (the shuffles
      // already order it) before lane 0 overwrites it.
      __syncwarp();
      if (lane == 0) {
        float alpha = exp2f(m_old - m_use);
        row_alpha[r] = alpha;
        row_l[r] = row_l[r] * alpha + sum;
        row_m[r] = m_new;
      }
    }
    __syncthreads();

#pragma unroll
    for (int i = 0; i < kAccPerThread; ++i) {
      int e = tid + i * kAttnThreads;
      if (e < rows * D) {
        int r = e / D, d = e - r * D;
        float a = acc[i] * row_alpha[r];
        const float* pr = sc + r * Tk;
        for (int j = 0; j < n; ++j) a = fmaf(pr[j], float(load(vs[j * Dp + d])), a);
        acc[i] = a;
      }
    }
    __syncthreads();
  }

  const int64_t row_count = int64_t(p.batch) * p.q_heads * p.q_len;
#pragma unroll
  for (int i = 0; i < kAccPerThread; ++i) {
    int e = tid + i * kAttnThreads;
    if (e < rows * D) {
      int r = e / D, d = e - r * D, rr = row0 + r;
      int s = rr / G, h = kvh * G + rr % G;
      int64_t out_row = (int64_t(b) * p.q_heads + h) * p.q_len + s;
      if (p.splits == 1) {
        float l = row_l[r];
        static_cast<T*>(p.out)[out_row * D + d] = store_as<T>(l > 0.f ? acc[i] / l : 0.f);
      } else {
        int64_t at = split * row_count + out_row;
        p.partial_acc[at * D + d] = acc[i];
        if (d == 0) {
          p.partial_ml[2 * at] = row_m[r];
          p.partial_ml[2 * at + 1] = row_l[r];
        }
      }
    }
  }
  if (p.splits == 1) return;

  // The last chunk of this (batch, kv head, row chunk) to finish merges the chunks' partial
  // states, weights 2^(m_s - M), so no second kernel is launched: each block publishes its
  // partials (fence), counts itself in, and the one that completes the count reads them all
  // back from L2 (__ldcg: other SMs wrote them) and resets the count for the next launch.
  __shared__ bool last;
  __threadfence();
  __syncthreads();
  const int64_t group = (int64_t(b) * p.kv_heads + kvh) * p.row_chunks + chunk;
  if (tid == 0) last = atomicAdd(&p.arrivals[group], 1u) == unsigned(p.splits - 1);
  __syncthreads();
  if (!last) return;
  __threadfence();
  // The chunks' (max, sum) of every row in shared memory (the K/V tile is free now; the
  // host keeps splits small enough), all loaded at once; then each row's top max and total
  // weight; then each chunk's weight 2^(m_s - top); then the weighted sum of the partial
  // outputs, whose loads are independent and go out together.
  float* chunk_m = reinterpret_cast<float*>(smem + lay.k);
  float* chunk_l = chunk_m + rows * p.splits;
  for (int e = tid; e < rows * p.splits; e += kAttnThreads) {
    int r = e / p.splits, sp = e - r * p.splits, rr = row0 + r;
    int64_t out_row = (int64_t(b) * p.q_heads + kvh * G + rr % G) * p.q_len + rr / G;
    int64_t at = sp * row_count + out_row;
    float l = __ldcg(p.partial_ml + 2 * at + 1);
    chunk_l[e] = l;
    chunk_m[e] = l > 0.f ? __ldcg(p.partial_ml + 2 * at) : kNegInf;
  }
  __syncthreads();
  for (int r = tid; r < rows; r += kAttnThreads) {
    float top = kNegInf;
    for (int sp = 0; sp < p.splits; ++sp) top = fmaxf(top, chunk_m[r * p.splits + sp]);
    float total = 0.f;
    for (int sp = 0; sp < p.splits; ++sp) {
      float l = chunk_l[r * p.splits + sp];
      if (l > 0.f) total += l * exp2f(chunk_m[r * p.splits + sp] - top);
    }
    row_m[r] = top;
    row_l[r] = total;
  }
  __syncthreads();
  for (int e = tid; e < rows * p.splits; e += kAttnThreads) {
    int r = e / p.splits;
    chunk_m[e] = chunk_l[e] > 0.f ? exp2f(chunk_m[e] - row_m[r]) : 0.f;  // now the weight
  }
  __syncthreads();
  for (int e = tid; e < rows * D; e += kAttnThreads) {
    int r = e / D, d = e - r * D, rr = row0 + r;
    int64_t out_row = (int64_t(b) * p.q_heads + kvh * G + rr % G) * p.q_len + rr / G;
    const float* weight = chunk_m + r * p.splits;
    float sum = 0.f;
#pragma unroll 4
    for (int sp = 0; sp < p.splits; ++sp)
      sum = fmaf(weight[sp], __ldcg(p.partial_acc + (sp * row_count + out_row) * D + d), sum);
    float total = row_l[r];
    static_cast<T*>(p.out)[out_row * D + d] = store_as<T>(total > 0.f ? sum / total : 0.f);
  }
  if (tid == 0) p.arrivals[group] = 0;
}

// Element strides of a mask broadcast to [B, Hq, Sq, Skv] (right-aligned, 0 where size 1).
void mask_strides(const TensorView& mask, int64_t out[4]) {
  for (int d = 0; d < 4; ++d) out[d] = 0;
  int64_t stride = 1;
  for (int d = mask.rank() - 1; d >= 0; --d) {
    out[d + 4 - mask.rank()] = mask.shape[size_t(d)] == 1 ? 0 : stride;
    stride *= mask.shape[size_t(d)];
  }
}

template <class T, class KV>
void launch(KernelContext& ctx, const ir::Node& node, std::span<const TensorView> in,
            TensorView& out, bool split_kv) {
  const TensorView& q = in[0];
  const TensorView& k = in[1];
  Params p{};
  p.q = q.data;
  p.k = k.data;
  p.v = in[2].data;
  p.out = out.data;
  p.batch = int(q.shape[0]);
  p.q_heads = int(q.shape[1]);
  p.q_len = int(q.shape[2]);
  p.dim = int(q.shape[3]);
  p.kv_heads = int(k.shape[1]);
  p.kv_cap = int(k.shape[2]);
  if (out.numel() == 0) return;
  p.group = p.q_heads / p.kv_heads;
  double scale = node.attrs.get_or<double>("scale", 1.0 / std::sqrt(double(p.dim)));
  p.scale_log2 = float(scale * double(kLog2e));
  p.causal = node.attrs.get_or<bool>("causal", false);
  p.window = node.attrs.get_or<int64_t>("window", 0);
  size_t next = 3;
  if (node.attrs.get_or<bool>("has_mask", false)) {
    const TensorView& mask = in[next++];
    p.mask = mask.data;
    p.mask_bool = mask.dtype == DType::boolean;
    mask_strides(mask, p.mask_stride);
  }
  if (node.attrs.get_or<bool>("has_kv_len", false)) {
    const TensorView& kv_len = in[next++];
    p.kv_len = kv_len.data;
    p.kv_len_i64 = kv_len.dtype == DType::i64;
    p.kv_len_per_batch = kv_len.numel() > 1;
  }
  if (node.attrs.get_or<bool>("has_k_scale", false)) {
    p.k_scale = static_cast<const float*>(in[next++].data);
    p.v_scale = static_cast<const float*>(in[next++].data);  // inference: both or neither
  }
  constexpr int kV = kVec<KV>;
  p.dim_padded = (p.dim + kV - 1) / kV * kV;
  p.k_stride = p.dim_padded + kV;
  p.vec16 = p.dim % kV == 0 && aligned16(p.k) && aligned16(p.v);
  int row_bytes = (p.k_stride + p.dim_padded) * int(sizeof(KV));
  p.key_tile = std::clamp(kKvTileBytes / row_bytes, 1, kMaxKeyTile);
  p.rows_total = p.group * p.q_len;
  p.rows_per_block = std::min({p.rows_total, kMaxBlockRows, std::max(1, kMaxBlockAcc / p.dim)});
  auto chunks_of = [&](int rows) { return (p.rows_total + rows - 1) / rows; };
  if (!split_kv) {
    // Prefill: fewer rows a block until there are blocks for several per SM. Few kv heads
    // leave the GPU nearly idle otherwise (SmolLM2, 3 kv heads x 512 positions x 3 heads
    // a group: 144 blocks of 32 rows, 265 us a layer); smaller blocks run side by side and
    // hide each other's tile loads.
    const int64_t want = 4 * int64_t(sm_count());
    while (p.rows_per_block > kMinPrefillBlockRows &&
           int64_t(p.batch) * p.kv_heads * chunks_of(p.rows_per_block) < want)
      p.rows_per_block = std::max(kMinPrefillBlockRows, p.rows_per_block / 2);
  }
  p.row_chunks = chunks_of(p.rows_per_block);
  int64_t base_blocks = int64_t(p.batch) * p.kv_heads * p.row_chunks;
  p.splits = 1;
  p.keys_per_split = std::max(p.kv_cap, 1);
  if (split_kv && p.kv_cap > 0) {
    // Enough blocks for two waves over the GPU, chunks of at least 128 keys.
    int64_t want = (2 * int64_t(sm_count()) + base_blocks - 1) / base_blocks;
    int64_t most = (p.kv_cap + 127) / 128;
    int64_t splits = std::clamp<int64_t>(want, 1, most);
    int64_t per = (p.kv_cap + splits - 1) / splits;
    per = (per + p.key_tile - 1) / p.key_tile * p.key_tile;
    p.keys_per_split = int(per);
    p.splits = int((p.kv_cap + per - 1) / per);
    // The merge keeps two floats per (row, chunk) where the K/V tiles were.
    const int64_t kv_tile_bytes =
        int64_t(p.key_tile) * (p.k_stride + p.dim_padded) * int64_t(sizeof(KV));
    if (int64_t(p.rows_per_block) * p.splits * 2 * int64_t(sizeof(float)) > kv_tile_bytes) {
      int64_t most_splits = std::max<int64_t>(
          1, kv_tile_bytes / (int64_t(p.rows_per_block) * 2 * int64_t(sizeof(float))));
      per = (p.kv_cap + most_splits - 1) / most_splits;
      per = (per + p.key_tile - 1) / p.key_tile * p.key_tile;
      p.keys_per_split = int(per);
      p.splits = int((p.kv_cap + per - 1) / per);
    }
  }
  cudaStream_t stream = stream_of(ctx);
  if (p.splits > 1) {
    int64_t rows = int64_t(p.batch) * p.q_heads * p.q_len;
    SplitBuffers buffers = split_buffers(ctx, size_t(base_blocks),
                                         size_t(p.splits) * size_t(rows) * (size_t(p.dim) + 2));
    p.arrivals = buffers.arrivals;
    p.partial_acc = buffers.partials;
    p.partial_ml = p.partial_acc + size_t(p.splits) * size_t(rows) * size_t(p.dim);
  }
  Layout lay = layout_of<KV>(p);
  if (lay.bytes > kMaxSharedBytes)
    fail(ErrorKind::internal, "scaled_dot_product_attention: tile of " + std::to_string(lay.bytes) +
                                  " bytes of shared memory");
  int64_t blocks = base_blocks * p.splits;
  check_cuda(launch_pdl(attention_kernel<T, KV>, dim3(blocks_for(blocks, 1)), dim3(kAttnThreads),
                        lay.bytes, stream, p),
             "scaled_dot_product_attention launch");
  check_launch("scaled_dot_product_attention");
}

bool fits(const ir::Node&, std::span<const TensorView> in) {
  const TensorView& q = in[0];
  const TensorView& k = in[1];
  // Sizes index with int on the device.
  int64_t limit = std::numeric_limits<int>::max();
  return q.shape[3] <= kMaxDim && k.shape[2] < limit && q.shape[2] < limit &&
         q.shape[1] * q.shape[2] < limit;
}

bool fits_decode(const ir::Node& node, std::span<const TensorView> in) {
  return fits(node, in) && in[0].shape[2] <= kDecodeQueries;
}

bool fits_split_kv(const ir::Node& node, std::span<const TensorView> in) {
  return fits_decode(node, in) && !attention_decode_fits(node, in);
}

// Decode shapes take a decode kernel only. Timing the two at compile would be misleading: the keys
// in use (kv_len) are read on the device and are few or none when the plan is timed, where
// one block per kv head wins, while a captured decode step later replays at every length and
// one block walking thousands of keys is several times slower than the split (measured on
// the H200: 19 us against ~5 us per layer of SmolLM2 at a few hundred keys).
bool fits_prefill(const ir::Node& node, std::span<const TensorView> in) {
  return fits(node, in) && !fits_decode(node, in);
}

// q's dtype, and k's: the same or i8.
void run(KernelContext& ctx, const ir::Node& node, std::span<const TensorView> in, TensorView& out,
         bool split_kv) {
  dispatch_float(in[0].dtype, [&](auto tag) {
    using T = decltype(tag);
    if (in[1].dtype == DType::i8)
      launch<T, int8_t>(ctx, node, in, out, split_kv);
    else
      launch<T, T>(ctx, node, in, out, split_kv);
  });
}

void run_split_kv(KernelContext& ctx, const ir::Node& node, std::span<const TensorView> in,
                  std::span<TensorView> out) {
  run(ctx, node, in, out[0], true);
}

void run_tiled(KernelContext& ctx, const ir::Node& node, std::span<const TensorView> in,
               std::span<TensorView> out) {
  run(ctx, node, in, out[0], false);
}

// quantize_kv: one warp per row of D. scale = max|x| / 127 and code = round(x / scale) in
// IEEE f32 division and rounding half away from zero, as the CPU kernel does (the same
// codes bit for bit).
template <class T>
__global__ void quantize_kv_kernel(const T* x, int8_t* codes, float* scales, int64_t rows, int D) {
  pdl_wait();
  pdl_release();
  const int lane = threadIdx.x & 31;
  const int64_t row = int64_t(blockIdx.x) * (blockDim.x / 32) + (threadIdx.x >> 5);
  if (row >= rows) return;
  const T* xr = x + row * D;
  float top = 0.f;
  for (int d = lane; d < D; d += 32) top = fmaxf(top, fabsf(float(load(xr[d]))));
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) top = fmaxf(top, __shfl_xor_sync(0xffffffffu, top, o));
  const float scale = __fdiv_rn(top, 127.f);
  if (lane == 0) scales[row] = scale;
  for (int d = lane; d < D; d += 32) {
    float c = scale > 0.f ? roundf(__fdiv_rn(float(load(xr[d])), scale)) : 0.f;
    codes[row * D + d] = int8_t(fminf(fmaxf(c, -127.f), 127.f));
  }
}

void run_quantize_kv(KernelContext& ctx, const ir::Node&, std::span<const TensorView> in,
                     std::span<TensorView> out) {
  const TensorView& x = in[0];
  const int64_t rows = out[1].numel();
  if (rows == 0) return;
  const int64_t D = x.shape[3];
  cudaStream_t stream = stream_of(ctx);
  if (D == 0) {
    check_cuda(cudaMemsetAsync(out[1].data, 0, size_t(rows) * sizeof(float), stream),
               "quantize_kv");
    return;
  }
  constexpr int kWarps = 8;
  dispatch_float(x.dtype, [&](auto tag) {
    using T = decltype(tag);
    check_cuda(
        launch_pdl(quantize_kv_kernel<T>, dim3(blocks_for(rows, kWarps)), dim3(kWarps * 32), 0,
                   stream, static_cast<const T*>(x.data), static_cast<int8_t*>(out[0].data),
                   static_cast<float*>(out[1].data), rows, int(D)),
        "quantize_kv launch");
  });
  check_launch("quantize_kv");
}

bool fits_quantize_kv(const ir::Node&, std::span<const TensorView> in) {
  return in[0].shape[3] < std::numeric_limits<int>::max();
}

}  // namespace

// Per-node state: the split buffers, made on the first (eager) run of a plan and reused by
// later runs and graph replays.
namespace {
struct SplitWorkspace {
  void* data = nullptr;
  size_t bytes = 0;
  size_t groups = 0;  // arrival counts at its start, zeroed when it was made
  ~SplitWorkspace() {
    if (data) (void)cudaFree(data);
  }
};
}  // namespace

SplitBuffers split_buffers(KernelContext& ctx, size_t groups, size_t partial_floats) {
  // Arrival counts first (one per group of split blocks), then the partials.
  const size_t counts_bytes = (groups * sizeof(unsigned) + 255) / 256 * 256;
  const size_t need = counts_bytes + partial_floats * sizeof(float);
  auto* ws = ctx.state && *ctx.state ? static_cast<SplitWorkspace*>(ctx.state->get()) : nullptr;
  if (!ws || ws->bytes < need || ws->groups != groups) {
    auto fresh = std::make_shared<SplitWorkspace>();
    check_cuda(cudaMalloc(&fresh->data, need), "scaled_dot_product_attention workspace");
    // The arrival counts start at zero; every launch leaves them at zero.
    check_cuda(cudaMemsetAsync(fresh->data, 0, groups * sizeof(unsigned), stream_of(ctx)),
               "scaled_dot_product_attention workspace");
    fresh->groups = groups;
    fresh->bytes = need;
    ws = fresh.get();
    if (ctx.state)
      *ctx.state = fresh;
    else
      fail(ErrorKind::internal, "scaled_dot_product_attention needs a kernel state slot");
  }
  return {static_cast<unsigned*>(ws->data),
          reinterpret_cast<float*>(static_cast<char*>(ws->data) + counts_bytes)};
}

int sm_count() {
  static int count = [] {
    int device = 0, n = 0;
    if (cudaGetDevice(&device) != cudaSuccess ||
        cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, device) != cudaSuccess) {
      (void)cudaGetLastError();
      return 132;
    }
    return n;
  }();
  return count;
}

void run_attention_tiled(KernelContext& ctx, const ir::Node& node, std::span<const TensorView> in,
                         std::span<TensorView> out) {
  run_tiled(ctx, node, in, out);
}

void run_attention_split_kv(KernelContext& ctx, const ir::Node& node,
                            std::span<const TensorView> in, std::span<TensorView> out) {
  run_split_kv(ctx, node, in, out);
}

void register_attention_kernels(Backend& b) {
  // The register-resident decode kernel first; split_kv serves the decode shapes it does not
  // take (masks, int8 K/V, other head dims, more than 8 rows a kv head).
  b.add_kernel("scaled_dot_product_attention", attention_decode_kernel());
  b.add_kernel("scaled_dot_product_attention",
               Kernel{"cuda.attention.split_kv", run_split_kv, fits_split_kv});
  // The tensor-core kernel before the CUDA-core one: the first that supports a node runs
  // when tactics are not timed; timed, the faster wins.
  b.add_kernel("scaled_dot_product_attention", attention_mma_kernel());
  b.add_kernel("scaled_dot_product_attention",
               Kernel{"cuda.attention.tiled", run_tiled, fits_prefill});
  b.add_kernel("quantize_kv", Kernel{"cuda.quantize_kv", run_quantize_kv, fits_quantize_kv});
}

}  // namespace loom::cuda
