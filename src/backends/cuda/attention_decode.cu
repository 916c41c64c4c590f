// scaled_dot_product_attention for decode ("cuda.attention.decode"): few query rows over a
// long KV cache, where the time is the K/V bytes and the memory round trips, not the FLOPs.
//
// K and V rows go straight from global memory into registers: a team of L lanes holds one key
// row as L 16-byte vectors (L = 8, 16 or 32: D 64 / 128 / 256 in f16 and bf16, 32 / 64 / 128
// in f32), each lane the matching slice of every query row of the kv head's group (q scaled
// into the log2 domain), so a score is L-lane partial dot products summed by shuffles. Each
// team walks its keys kUnroll at a time with all their K and V loads issued together, keeps
// an online softmax (max, sum, accumulator slice) per query row in registers, and the teams
// of a block are merged once at the end through shared memory. No shared memory or barrier
// is on the path of the keys, unlike the tiled split_kv kernel (attention.cu) it replaces
// for these shapes.
//
// The keys are split among blocks (flash-decoding) so that the GPU fills even at batch 1;
// the splits share the keys in use (kv_len is read on the device, so a captured step replays
// at every length), and the last block of a (batch, kv head) to finish merges the splits'
// partial states, as the split_kv kernel does (one launch).
#include <algorithm>
#include <cmath>
#include <limits>

#include "backends/cuda/attention_kernels.h"
#include "backends/cuda/cuda_error.h"
#include "backends/cuda/cuda_kernels.h"
#include "backends/cuda/device/launch.cuh"
#include "backends/cuda/device/pdl.cuh"
#include "backends/cuda/device/types.cuh"

namespace loom::cuda {

namespace {

constexpr int kDecodeThreads = 128;
constexpr int kMaxRows = 8;      // query rows per kv head (group x Sq)
constexpr int kMaxSplits = 128;  // the merge keeps 2 floats per (row, split) in shared memory
constexpr int kMinKeysPerSplit = 64;
constexpr float kLog2e = 1.4426950408889634f;

struct DecodeParams {
  const void* q;
  const void* k;
  const void* v;
  void* out;
  float* partial_acc;  // [splits, B * Hq * Sq, D]
  float* partial_ml;   // [splits, B * Hq * Sq, 2]: max (log2) and sum
  unsigned* arrivals;  // per (batch, kv head): splits done
  const void* kv_len;
  bool kv_len_i64;
  bool kv_len_per_batch;
  bool causal;
  int64_t window;
  float scale_log2;
  int q_heads, kv_heads, group, q_len, kv_cap;
  int rows;  // group * q_len, position-major: row r is position r / group, head r % group
  int splits;
};

__device__ __forceinline__ int valid_keys(const DecodeParams& p, int b) {
  if (!p.kv_len) return p.kv_cap;
  const int at = p.kv_len_per_batch ? b : 0;
  const int64_t n = p.kv_len_i64 ? static_cast<const int64_t*>(p.kv_len)[at]
                                 : int64_t(static_cast<const int32_t*>(p.kv_len)[at]);
  return int(min(max(n, int64_t(0)), int64_t(p.kv_cap)));
}

// The kVec<T> elements of a 16-byte vector as floats.
template <class T>
__device__ __forceinline__ void unpack(const uint4& raw, float* out) {
  if constexpr (std::is_same_v<T, float>) {
    out[0] = __uint_as_float(raw.x);
    out[1] = __uint_as_float(raw.y);
    out[2] = __uint_as_float(raw.z);
    out[3] = __uint_as_float(raw.w);
  } else {
    const uint32_t w[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      if constexpr (std::is_same_v<T, bf16>) {
        out[2 * i] = __uint_as_float(w[i] << 16);
        out[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
      } else {
        const float2 f = __half22float2(*reinterpret_cast<const __half2*>(&w[i]));
        out[2 * i] = f.x;
        out[2 * i + 1] = f.y;
      }
    }
  }
}

__device__ __forceinline__ uint4 load_stream(const void* at) {
  // Each K/V byte is read once: keep it out of L1.
  return __ldcs(static_cast<const uint4*>(at));
}

// T: q, k, v and the output; kLanes: lanes per key row (D = kLanes * kVec<T>); kRows: query
// rows held per kv head (>= p.rows, a power of two).
template <class T, int kLanes, int kRows>
__global__ void __launch_bounds__(kDecodeThreads) attention_decode_kernel(DecodeParams p) {
  // Keys per team in flight together: fewer for 8 rows, whose registers are mostly q and acc.
  constexpr int kUnroll = kRows >= 8 && sizeof(T) == 2 ? 2 : 4;
  constexpr int kE = kVec<T>;  // elements per lane
  constexpr int D = kLanes * kE;
  constexpr int kTeams = kDecodeThreads / kLanes;
  const float kNegInf = -std::numeric_limits<float>::infinity();
  __shared__ float team_ml[kTeams][kRows][2];
  __shared__ __align__(16) float team_acc[kTeams][kRows][D];
  static_assert(kTeams * D >= 2 * kMaxSplits + 1, "the merge's weights fit in team_acc");
  __shared__ bool last;

  const int tid = threadIdx.x, team = tid / kLanes, lane = tid % kLanes;
  const int split = blockIdx.x, bh = blockIdx.y;  // bh = b * kv_heads + kv head
  const int b = bh / p.kv_heads, kvh = bh % p.kv_heads;
  const int G = p.group;
  pdl_wait();  // q, the cache and kv_len come from earlier kernels
  pdl_release();

  const int keys = valid_keys(p, b);
  const int shift = keys - p.q_len;  // query position s sits at key s + shift
  // The keys in use are shared among the splits in chunks of at least kMinKeysPerSplit, so a
  // short context uses the first few splits; the others leave at once and the merge waits
  // only for the active ones.
  int per_split = (keys + p.splits - 1) / p.splits;
  per_split = max(kMinKeysPerSplit,
                  (per_split + kMinKeysPerSplit - 1) / kMinKeysPerSplit * kMinKeysPerSplit);
  const int active = max(1, (keys + per_split - 1) / per_split);
  if (split >= active) return;
  int k_begin = split * per_split;
  int k_end = min(keys, k_begin + per_split);
  if (p.causal) k_end = min(k_end, (p.rows - 1) / G + shift + 1);
  if (p.window > 0) k_begin = max(k_begin, int(max(int64_t(0), int64_t(shift) - p.window + 1)));

  // This lane's slice of each query row, in the log2 domain.
  float q[kRows][kE];
  const T* qg = static_cast<const T*>(p.q);
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    if (r < p.rows) {
      const int s = r / G, h = kvh * G + r % G;
      const uint4 raw = *reinterpret_cast<const uint4*>(
          qg + ((int64_t(b) * p.q_heads + h) * p.q_len + s) * D + lane * kE);
      unpack<T>(raw, q[r]);
#pragma unroll
      for (int e = 0; e < kE; ++e) q[r][e] *= p.scale_log2;
    } else {
#pragma unroll
      for (int e = 0; e < kE; ++e) q[r][e] = 0.f;
    }
  }

  float m[kRows], l[kRows], acc[kRows][kE];
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    m[r] = kNegInf;
    l[r] = 0.f;
#pragma unroll
    for (int e = 0; e < kE; ++e) acc[r][e] = 0.f;
  }

  const int64_t kv_base = int64_t(bh) * p.kv_cap * D + lane * kE;
  const T* kg = static_cast<const T*>(p.k) + kv_base;
  const T* vg = static_cast<const T*>(p.v) + kv_base;
  // The loop is the same for every team (the shuffles need whole warps); keys past k_end
  // are not loaded and score -inf. The next keys' loads are issued before the current keys
  // are used, so two rounds of K/V are in flight per team.
  constexpr int kStep = kTeams * kUnroll;
  uint4 k_next[kUnroll], v_next[kUnroll];
  auto issue = [&](int j0) {
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int key = j0 + team + u * kTeams;
      if (key < k_end) {
        k_next[u] = load_stream(kg + int64_t(key) * D);
        v_next[u] = load_stream(vg + int64_t(key) * D);
      } else {
        k_next[u] = v_next[u] = make_uint4(0, 0, 0, 0);
      }
    }
  };
  if (k_begin < k_end) issue(k_begin);
  for (int j0 = k_begin; j0 < k_end; j0 += kStep) {
    uint4 kr[kUnroll], vr[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      kr[u] = k_next[u];
      vr[u] = v_next[u];
    }
    if (j0 + kStep < k_end) issue(j0 + kStep);
    float s[kUnroll][kRows];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      float kf[kE];
      unpack<T>(kr[u], kf);
#pragma unroll
      for (int r = 0; r < kRows; ++r) {
        float dot = 0.f;
#pragma unroll
        for (int e = 0; e < kE; ++e) dot = fmaf(q[r][e], kf[e], dot);
        s[u][r] = dot;
      }
    }
    // Sum the lanes' partial dot products: every lane of the team gets the score.
#pragma unroll
    for (int o = kLanes / 2; o > 0; o >>= 1)
#pragma unroll
      for (int u = 0; u < kUnroll; ++u)
#pragma unroll
        for (int r = 0; r < kRows; ++r) s[u][r] += __shfl_xor_sync(0xffffffffu, s[u][r], o);
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int key = j0 + team + u * kTeams;
#pragma unroll
      for (int r = 0; r < kRows; ++r) {
        const int pos = r / G + shift;
        const bool visible = key < k_end && r < p.rows && (!p.causal || key <= pos) &&
                             (p.window <= 0 || key > pos - p.window);
        if (!visible) s[u][r] = kNegInf;
      }
    }
    float vf[kUnroll][kE];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) unpack<T>(vr[u], vf[u]);
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      float top = m[r];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) top = fmaxf(top, s[u][r]);
      if (top == kNegInf) continue;           // nothing visible to this row yet
      const float alpha = exp2f(m[r] - top);  // 0 when m was -inf
      m[r] = top;
      l[r] *= alpha;
#pragma unroll
      for (int e = 0; e < kE; ++e) acc[r][e] *= alpha;
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const float w = exp2f(s[u][r] - top);
        l[r] += w;
#pragma unroll
        for (int e = 0; e < kE; ++e) acc[r][e] = fmaf(w, vf[u][e], acc[r][e]);
      }
    }
  }

  // Merge the teams: each writes its state, then thread t takes elements t, t + 128, ... of
  // the rows x D results.
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    if (lane == 0) {
      team_ml[team][r][0] = m[r];
      team_ml[team][r][1] = l[r];
    }
#pragma unroll
    for (int e = 0; e < kE; ++e) team_acc[team][r][lane * kE + e] = acc[r][e];
  }
  __syncthreads();
  const int64_t row_count = int64_t(gridDim.y / p.kv_heads) * p.q_heads * p.q_len;
  auto out_row_of = [&](int r) {
    return (int64_t(b) * p.q_heads + kvh * G + r % G) * p.q_len + r / G;
  };
  for (int i = tid; i < p.rows * D; i += kDecodeThreads) {
    const int r = i / D, d = i % D;
    float top = kNegInf;
#pragma unroll
    for (int t = 0; t < kTeams; ++t) top = fmaxf(top, team_ml[t][r][0]);
    float total = 0.f, sum = 0.f;
    if (top != kNegInf) {
#pragma unroll
      for (int t = 0; t < kTeams; ++t) {
        const float w = exp2f(team_ml[t][r][0] - top);  // 0 for a team that saw nothing
        total = fmaf(w, team_ml[t][r][1], total);
        sum = fmaf(w, team_acc[t][r][d], sum);
      }
    }
    const int64_t out_row = out_row_of(r);
    if (active == 1) {
      static_cast<T*>(p.out)[out_row * D + d] = store_as<T>(total > 0.f ? sum / total : 0.f);
    } else {
      const int64_t at = split * row_count + out_row;
      p.partial_acc[at * D + d] = sum;
      if (d == 0) {
        p.partial_ml[2 * at] = top;
        p.partial_ml[2 * at + 1] = total;
      }
    }
  }
  if (active == 1) return;

  // The last active split of this (batch, kv head) to finish merges the partials (read from
  // L2 with __ldcg: other SMs wrote them) and resets the count for the next launch.
  __threadfence();
  __syncthreads();
  if (tid == 0) last = atomicAdd(&p.arrivals[bh], 1u) == unsigned(active - 1);
  __syncthreads();
  if (!last) return;
  __threadfence();
  // Every split's (max, sum) of every row loaded at once into the space of team_acc (free
  // now; active <= kMaxSplits), then per row the top max and each split's weight 2^(m - top),
  // one warp a row, then the weighted sum of the partial outputs, a float4 column a thread.
  float* split_m = &team_acc[0][0][0];              // [rows, active]
  float* split_w = split_m + kRows * kMaxSplits;    // [rows, active]
  float* row_total = split_w + kRows * kMaxSplits;  // [rows]
  for (int e = tid; e < p.rows * active; e += kDecodeThreads) {
    const int r = e / active, sp = e % active;
    const int64_t at = sp * row_count + out_row_of(r);
    const float ls = __ldcg(p.partial_ml + 2 * at + 1);
    split_w[e] = ls;
    split_m[e] = ls > 0.f ? __ldcg(p.partial_ml + 2 * at) : kNegInf;
  }
  __syncthreads();
  const int warp = tid / 32, warp_lane = tid % 32;
  for (int r = warp; r < p.rows; r += kDecodeThreads / 32) {
    float top = kNegInf;
    for (int sp = warp_lane; sp < active; sp += 32) top = fmaxf(top, split_m[r * active + sp]);
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) top = fmaxf(top, __shfl_xor_sync(0xffffffffu, top, o));
    float total = 0.f;
    for (int sp = warp_lane; sp < active; sp += 32) {
      const int e = r * active + sp;
      const float w = split_w[e] > 0.f ? exp2f(split_m[e] - top) : 0.f;
      total = fmaf(w, split_w[e], total);
      split_w[e] = w;  // now the split's weight
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) total += __shfl_xor_sync(0xffffffffu, total, o);
    if (warp_lane == 0) row_total[r] = total;
  }
  __syncthreads();
  constexpr int kCols = D / 4;
  for (int i = tid; i < p.rows * kCols; i += kDecodeThreads) {
    const int r = i / kCols, c = i % kCols;
    const int64_t out_row = out_row_of(r);
    const float* w = split_w + r * active;
    float4 sum = make_float4(0.f, 0.f, 0.f, 0.f);
#pragma unroll 8
    for (int sp = 0; sp < active; ++sp) {
      const float4 a = __ldcg(
          reinterpret_cast<const float4*>(p.partial_acc + (sp * row_count + out_row) * D) + c);
      sum.x = fmaf(w[sp], a.x, sum.x);
      sum.y = fmaf(w[sp], a.y, sum.y);
      sum.z = fmaf(w[sp], a.z, sum.z);
      sum.w = fmaf(w[sp], a.w, sum.w);
    }
    const float total = row_total[r];
    const float inv = total > 0.f ? 1.f / total : 0.f;
    T* o = static_cast<T*>(p.out) + out_row * D + 4 * c;
    o[0] = store_as<T>(sum.x * inv);
    o[1] = store_as<T>(sum.y * inv);
    o[2] = store_as<T>(sum.z * inv);
    o[3] = store_as<T>(sum.w * inv);
  }
  if (tid == 0) p.arrivals[bh] = 0;
}

// Lanes per key row for q's dtype and head dim: 8, 16 or 32, else 0 (not this kernel's).
int lanes_for(DType dtype, int64_t dim) {
  const int64_t vec = dtype == DType::f32 ? 4 : 8;
  if (dim % vec != 0) return 0;
  const int64_t lanes = dim / vec;
  return lanes == 8 || lanes == 16 || lanes == 32 ? int(lanes) : 0;
}

int rows_held(int rows) {
  int held = 1;
  while (held < rows) held *= 2;
  return held;
}

template <class T, int kLanes, int kRows>
void launch_with(const DecodeParams& p, dim3 grid, cudaStream_t stream) {
  check_cuda(launch_pdl(attention_decode_kernel<T, kLanes, kRows>, grid, dim3(kDecodeThreads), 0,
                        stream, p),
             "scaled_dot_product_attention (decode) launch");
}

template <class T, int kLanes>
void launch_lanes(const DecodeParams& p, dim3 grid, cudaStream_t stream) {
  switch (rows_held(p.rows)) {
    case 1:
      return launch_with<T, kLanes, 1>(p, grid, stream);
    case 2:
      return launch_with<T, kLanes, 2>(p, grid, stream);
    case 4:
      return launch_with<T, kLanes, 4>(p, grid, stream);
    default:
      return launch_with<T, kLanes, 8>(p, grid, stream);
  }
}

void run_decode(KernelContext& ctx, const ir::Node& node, std::span<const TensorView> in,
                std::span<TensorView> outs) {
  const TensorView& q = in[0];
  const TensorView& k = in[1];
  TensorView& out = outs[0];
  if (out.numel() == 0) return;
  // Rows are loaded 16 bytes at a time; a misaligned view (rare: arena buffers are aligned)
  // takes the tiled split-kv kernel.
  if (!aligned16(q.data) || !aligned16(k.data) || !aligned16(in[2].data))
    return run_attention_split_kv(ctx, node, in, outs);
  DecodeParams p{};
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
  p.rows = p.group * p.q_len;
  const int64_t dim = q.shape[3];
  const double scale = node.attrs.get_or<double>("scale", 1.0 / std::sqrt(double(dim)));
  p.scale_log2 = float(scale * double(kLog2e));
  p.causal = node.attrs.get_or<bool>("causal", false);
  p.window = node.attrs.get_or<int64_t>("window", 0);
  if (node.attrs.get_or<bool>("has_kv_len", false)) {
    const TensorView& kv_len = in[3];
    p.kv_len = kv_len.data;
    p.kv_len_i64 = kv_len.dtype == DType::i64;
    p.kv_len_per_batch = kv_len.numel() > 1;
  }
  const int64_t heads = int64_t(batch) * p.kv_heads;
  // Two blocks per SM over the whole GPU, each split at least kMinKeysPerSplit keys of the
  // capacity (the keys in use, known on the device, are shared among them). More splits
  // shorten each block's walk but lengthen the merge.
  const int64_t want = (2 * int64_t(sm_count()) + heads - 1) / heads;
  const int64_t most = std::max<int64_t>(1, (p.kv_cap + kMinKeysPerSplit - 1) / kMinKeysPerSplit);
  p.splits = int(std::clamp<int64_t>(want, 1, std::min<int64_t>(most, kMaxSplits)));
  if (p.splits > 1) {
    const size_t rows = size_t(batch) * p.q_heads * p.q_len;
    SplitBuffers buffers =
        split_buffers(ctx, size_t(heads), size_t(p.splits) * rows * (size_t(dim) + 2));
    p.arrivals = buffers.arrivals;
    p.partial_acc = buffers.partials;
    p.partial_ml = p.partial_acc + size_t(p.splits) * rows * size_t(dim);
  }
  const dim3 grid(unsigned(p.splits), unsigned(heads));
  cudaStream_t stream = stream_of(ctx);
  dispatch_float(q.dtype, [&](auto tag) {
    using T = decltype(tag);
    switch (lanes_for(q.dtype, dim)) {
      case 8:
        return launch_lanes<T, 8>(p, grid, stream);
      case 16:
        return launch_lanes<T, 16>(p, grid, stream);
      default:
        return launch_lanes<T, 32>(p, grid, stream);
    }
  });
  check_launch("scaled_dot_product_attention (decode)");
}

}  // namespace

bool attention_decode_fits(const ir::Node& node, std::span<const TensorView> in) {
  const TensorView& q = in[0];
  const TensorView& k = in[1];
  if (q.shape[2] > kDecodeQueries || node.attrs.get_or<bool>("has_mask", false) ||
      node.attrs.get_or<bool>("has_k_scale", false) || k.dtype != q.dtype ||
      in[2].dtype != q.dtype || lanes_for(q.dtype, q.shape[3]) == 0)
    return false;
  const int64_t limit = std::numeric_limits<int>::max() / 2;
  if (k.shape[2] >= limit || k.shape[0] * k.shape[1] >= 65536 || q.shape[1] % k.shape[1] != 0)
    return false;
  return q.shape[1] / k.shape[1] * q.shape[2] <= kMaxRows;
}

Kernel attention_decode_kernel() {
  return Kernel{"cuda.attention.decode", run_decode, attention_decode_fits};
}

}  // namespace loom::cuda
