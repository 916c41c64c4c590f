// sum, mean, max, min over any set of axes, and argmax over one axis. Contiguous input is
// viewed as kept and reduced dim groups: when the reduced dims are one innermost group each
// output is a row reduced by a warp or a block; otherwise each thread reduces one output
// (adjacent threads read adjacent elements when the innermost dim is kept).
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "backends/cuda/cuda_error.h"
#include "backends/cuda/cuda_kernels.h"
#include "backends/cuda/device/block_reduce.cuh"
#include "backends/cuda/device/indexing.cuh"
#include "backends/cuda/device/launch.cuh"
#include "backends/cuda/device/types.cuh"
#include "ops/reduce_params.h"

namespace loom::cuda {

namespace {

// Sums accumulate floats in double and integers in int64 (stored back modulo the dtype's
// width), as on the CPU; max and min keep the compute value.
template <class T>
using sum_acc_t = std::conditional_t<is_float_v<T>, double, int64_t>;
template <class T>
using acc_t = std::conditional_t<is_float_v<T>, float, int64_t>;

template <class T>
struct SumR {
  using Acc = sum_acc_t<T>;
  __device__ static Acc init() { return Acc(0); }
  __device__ static Acc combine(Acc a, Acc b) { return a + b; }
  __device__ static T finish(Acc a, int64_t) { return store_as<T>(a); }
};
template <class T>
struct MeanR : SumR<T> {
  using Acc = sum_acc_t<T>;
  __device__ static T finish(Acc a, int64_t count) {
    if constexpr (std::is_floating_point_v<Acc>) {
      return store_as<T>(a / double(count));
    } else {
      return store_as<T>(count ? a / count : Acc(0));
    }
  }
};
template <class T>
struct MaxR {
  using Acc = acc_t<T>;
  __device__ static Acc init() {
    if constexpr (std::is_floating_point_v<Acc>) {
      return -INFINITY;
    } else {
      return std::numeric_limits<Acc>::lowest();
    }
  }
  // NaN propagates: the first NaN met sticks.
  __device__ static Acc combine(Acc a, Acc b) {
    if constexpr (std::is_floating_point_v<Acc>) {
      if (isnan(a)) return a;
      if (isnan(b)) return b;
    }
    return b > a ? b : a;
  }
  __device__ static T finish(Acc a, int64_t) { return store_as<T>(a); }
};
template <class T>
struct MinR {
  using Acc = acc_t<T>;
  __device__ static Acc init() {
    if constexpr (std::is_floating_point_v<Acc>) {
      return INFINITY;
    } else {
      return std::numeric_limits<Acc>::max();
    }
  }
  __device__ static Acc combine(Acc a, Acc b) {
    if constexpr (std::is_floating_point_v<Acc>) {
      if (isnan(a)) return a;
      if (isnan(b)) return b;
    }
    return b < a ? b : a;
  }
  __device__ static T finish(Acc a, int64_t) { return store_as<T>(a); }
};

template <class R>
struct CombineOp {
  template <class A>
  __device__ A operator()(A a, A b) const {
    return R::combine(a, b);
  }
};

// One row of `len` contiguous elements per warp (kRowThreads 32) or per block (256).
template <class T, class R, int kRowThreads>
__global__ void row_reduce_kernel(const T* __restrict__ x, T* __restrict__ out, int64_t rows,
                                  int64_t len) {
  using Acc = typename R::Acc;
  __shared__ Acc scratch[32];
  int64_t row = kRowThreads == 32 ? int64_t(blockIdx.x) * (blockDim.x / 32) + (threadIdx.x >> 5)
                                  : int64_t(blockIdx.x);
  int lane = kRowThreads == 32 ? int(threadIdx.x & 31) : int(threadIdx.x);
  if (kRowThreads == 32 && row >= rows) return;
  const T* p = x + row * len;
  Acc acc = R::init();
  for (int64_t i = lane; i < len; i += kRowThreads) acc = R::combine(acc, Acc(load(p[i])));
  if constexpr (kRowThreads == 32) {
    acc = warp_reduce(acc, CombineOp<R>{});
  } else {
    acc = block_reduce(acc, CombineOp<R>{}, scratch);
  }
  if (lane == 0) out[row] = R::finish(acc, len);
}

// One output per thread: `kept` maps it to its first input element, `outer` walks every
// reduced dim but the last, which the inner loop walks with `last_stride`.
template <class T, class R>
__global__ void strided_reduce_kernel(const T* __restrict__ x, T* __restrict__ out, int64_t n_out,
                                      StridedIndexer<1> kept, StridedIndexer<1> outer,
                                      int64_t outer_count, int64_t last_len, int64_t last_stride,
                                      int64_t count) {
  using Acc = typename R::Acc;
  int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t o = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; o < n_out; o += stride) {
    int64_t base[1];
    kept.offsets(o, base);
    Acc acc = R::init();
    for (int64_t r = 0; r < outer_count; ++r) {
      int64_t off[1];
      outer.offsets(r, off);
      const T* p = x + base[0] + off[0];
      for (int64_t j = 0; j < last_len; ++j) acc = R::combine(acc, Acc(load(p[j * last_stride])));
    }
    out[o] = R::finish(acc, count);
  }
}

// The input as groups of merged dims, each kept or reduced.
struct ReduceLayout {
  Extents kept_extents, red_extents;
  Strides kept_strides, red_strides;
  int64_t n_out = 1, count = 1;
  bool rows = false;  // one reduced group, innermost: each output is a contiguous row
};

ReduceLayout layout_for(const Extents& shape, const std::vector<bool>& reduced) {
  struct Group {
    int64_t extent;
    int64_t stride;
    bool reduced;
  };
  std::vector<Group> groups;
  Strides strides = contiguous_strides(shape);
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    if (!groups.empty() && groups.back().reduced == reduced[d]) {
      groups.back().extent *= shape[d];
      groups.back().stride = strides[d];
    } else {
      groups.push_back({shape[d], strides[d], bool(reduced[d])});
    }
  }
  ReduceLayout l;
  int reduced_groups = 0;
  for (const auto& g : groups) {
    (g.reduced ? l.red_extents : l.kept_extents).push_back(g.extent);
    (g.reduced ? l.red_strides : l.kept_strides).push_back(g.stride);
    (g.reduced ? l.count : l.n_out) *= g.extent;
    reduced_groups += g.reduced;
  }
  for (auto e : shape)
    if (e == 0) l.n_out = 0, l.count = 0;  // empty input: handled by the caller
  l.rows = reduced_groups == 0 || (reduced_groups == 1 && groups.back().reduced);
  return l;
}

std::vector<bool> reduced_mask(const ir::Node& node, int rank) {
  std::vector<bool> mask(size_t(rank), false);
  const auto& axes = ops::ReduceParams::decode(node).axes;
  if (axes.empty()) mask.assign(size_t(rank), true);
  for (auto a : axes) mask[size_t(normalize_axis(a, rank, node.op_name().c_str()))] = true;
  return mask;
}

template <class T, template <class> class R>
void run_reduce_typed(const TensorView& x, const TensorView& y, const ir::Node& node,
                      cudaStream_t stream) {
  using Red = R<T>;
  int64_t n_out = y.numel();
  if (n_out == 0) return;
  ReduceLayout l = layout_for(x.shape, reduced_mask(node, x.rank()));
  const char* name = node.op_name().c_str();
  if (x.numel() == 0 || l.rows) {
    int64_t len = x.numel() == 0 ? 0 : l.count;
    if (len >= 2048) {
      row_reduce_kernel<T, Red, 256>
          <<<blocks_for(n_out, 1), 256, 0, stream>>>(x.as<const T>(), y.as<T>(), n_out, len);
    } else {
      row_reduce_kernel<T, Red, 32><<<blocks_for(n_out, kThreads / 32), kThreads, 0, stream>>>(
          x.as<const T>(), y.as<T>(), n_out, len);
    }
    check_launch(name);
    return;
  }
  int64_t last_len = l.red_extents.back(), last_stride = l.red_strides.back();
  Extents outer_extents(l.red_extents.begin(), l.red_extents.end() - 1);
  Strides outer_strides(l.red_strides.begin(), l.red_strides.end() - 1);
  auto kept = make_indexer<1>(l.kept_extents, {l.kept_strides});
  auto outer = make_indexer<1>(outer_extents, {outer_strides});
  strided_reduce_kernel<T, Red>
      <<<std::min(blocks_for(n_out, kThreads), 65536u), kThreads, 0, stream>>>(
          x.as<const T>(), y.as<T>(), n_out, kept, outer, numel(outer_extents), last_len,
          last_stride, l.count);
  check_launch(name);
}

template <template <class> class R, bool kFloatOnly>
void add_reduce(Backend& b, const char* op) {
  b.add_kernel(op, Kernel{std::string("cuda.") + op,
                          [](KernelContext& ctx, const ir::Node& node,
                             std::span<const TensorView> in, std::span<TensorView> out) {
                            auto body = [&](auto tag) {
                              run_reduce_typed<decltype(tag), R>(in[0], out[0], node,
                                                                 stream_of(ctx));
                            };
                            if constexpr (kFloatOnly) {
                              dispatch_float(in[0].dtype, body);
                            } else {
                              dispatch_numeric(in[0].dtype, body);
                            }
                          },
                          nullptr});
}

// argmax: first index of the maximum along one axis, viewed as [outer, len, inner].
// Whether candidate v beats the best so far: larger, or the first NaN (NaN counts as the
// maximum, as in NumPy and PyTorch).
template <class C>
__device__ __forceinline__ bool beats(C v, C best) {
  if constexpr (std::is_floating_point_v<C>) {
    return !isnan(best) && (isnan(v) || v > best);
  } else {
    return v > best;
  }
}

template <class C>
__device__ __forceinline__ bool ties(C v, C best) {
  if constexpr (std::is_floating_point_v<C>) {
    return (isnan(v) && isnan(best)) || v == best;
  } else {
    return v == best;
  }
}

template <class T>
__global__ void argmax_kernel(const T* __restrict__ x, int64_t* __restrict__ out, int64_t n_out,
                              int64_t len, int64_t inner) {
  using C = compute_t<T>;
  int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t o = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; o < n_out; o += stride) {
    int64_t outer = o / inner, j = o - outer * inner;
    const T* p = x + outer * len * inner + j;
    C best = load(p[0]);
    int64_t best_index = 0;
    for (int64_t i = 1; i < len; ++i) {
      C v = load(p[i * inner]);
      if (beats(v, best)) best = v, best_index = i;
    }
    out[o] = best_index;
  }
}

// The same for inner == 1: a warp per row; ties go to the lower index.
template <class T>
__global__ void argmax_row_kernel(const T* __restrict__ x, int64_t* __restrict__ out, int64_t rows,
                                  int64_t len) {
  using C = compute_t<T>;
  int64_t row = int64_t(blockIdx.x) * (blockDim.x / 32) + (threadIdx.x >> 5);
  int lane = int(threadIdx.x & 31);
  if (row >= rows) return;
  const T* p = x + row * len;
  C best = lane < len ? C(load(p[lane])) : C(0);
  int64_t best_index = lane < len ? lane : len;
  for (int64_t i = lane + 32; i < len; i += 32) {
    C v = load(p[i]);
    if (beats(v, best)) best = v, best_index = i;
  }
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) {
    C v = __shfl_xor_sync(0xffffffffu, best, offset);
    int64_t i = __shfl_xor_sync(0xffffffffu, best_index, offset);
    bool other_valid = i < len, mine_valid = best_index < len;
    if (other_valid && (!mine_valid || beats(v, best) || (ties(v, best) && i < best_index)))
      best = v, best_index = i;
  }
  if (lane == 0) out[row] = best_index;
}

// Few long rows (the logits of a decode step: one row of the vocabulary): a block per row, so
// the row is read by 1024 threads at once instead of one warp walking it (190 us for 49152
// logits on an H200). Each thread keeps its best, then warps, then the block's warps reduce;
// ties go to the lower index as in the kernels above.
constexpr int kArgmaxBlock = 1024;

template <class T>
__global__ void __launch_bounds__(kArgmaxBlock)
    argmax_block_kernel(const T* __restrict__ x, int64_t* __restrict__ out, int64_t len) {
  using C = compute_t<T>;
  __shared__ C best_of_warp[kArgmaxBlock / 32];
  __shared__ int64_t index_of_warp[kArgmaxBlock / 32];
  const T* p = x + int64_t(blockIdx.x) * len;
  const int lane = int(threadIdx.x & 31), warp = int(threadIdx.x >> 5);
  C best = C(0);
  int64_t best_index = len;  // len: nothing seen yet
  for (int64_t i = threadIdx.x; i < len; i += kArgmaxBlock) {
    C v = load(p[i]);
    if (best_index == len || beats(v, best)) best = v, best_index = i;
  }
  auto merge = [&](C v, int64_t i) {
    bool other_valid = i < len, mine_valid = best_index < len;
    if (other_valid && (!mine_valid || beats(v, best) || (ties(v, best) && i < best_index)))
      best = v, best_index = i;
  };
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1)
    merge(__shfl_xor_sync(0xffffffffu, best, offset),
          __shfl_xor_sync(0xffffffffu, best_index, offset));
  if (lane == 0) best_of_warp[warp] = best, index_of_warp[warp] = best_index;
  __syncthreads();
  if (warp == 0) {
    best = best_of_warp[lane];
    best_index = index_of_warp[lane];
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1)
      merge(__shfl_xor_sync(0xffffffffu, best, offset),
            __shfl_xor_sync(0xffffffffu, best_index, offset));
    if (lane == 0) out[blockIdx.x] = best_index;
  }
}

void run_argmax(KernelContext& ctx, const ir::Node& node, std::span<const TensorView> in,
                std::span<TensorView> out) {
  const TensorView& x = in[0];
  int64_t n_out = out[0].numel();
  if (n_out == 0) return;
  int axis = normalize_axis(ops::ArgmaxParams::decode(node).axis, x.rank(), "argmax");
  int64_t len = x.shape[size_t(axis)], inner = 1;
  for (int d = axis + 1; d < x.rank(); ++d) inner *= x.shape[size_t(d)];
  if (len == 0) fail(ErrorKind::value, "argmax over an empty axis");
  dispatch_numeric(x.dtype, [&](auto tag) {
    using T = decltype(tag);
    if (inner == 1 && len >= 4096 && n_out <= 65535) {
      argmax_block_kernel<T><<<unsigned(n_out), kArgmaxBlock, 0, stream_of(ctx)>>>(
          x.as<const T>(), out[0].as<int64_t>(), len);
    } else if (inner == 1) {
      argmax_row_kernel<T><<<blocks_for(n_out, kThreads / 32), kThreads, 0, stream_of(ctx)>>>(
          x.as<const T>(), out[0].as<int64_t>(), n_out, len);
    } else {
      argmax_kernel<T>
          <<<std::min(blocks_for(n_out, kThreads), 65536u), kThreads, 0, stream_of(ctx)>>>(
              x.as<const T>(), out[0].as<int64_t>(), n_out, len, inner);
    }
    check_launch("argmax");
  });
}

}  // namespace

void register_reduce_kernels(Backend& b) {
  add_reduce<SumR, false>(b, "sum");
  add_reduce<MeanR, false>(b, "mean");
  add_reduce<MaxR, false>(b, "max");
  add_reduce<MinR, false>(b, "min");
  b.add_kernel("argmax", Kernel{"cuda.argmax", run_argmax, nullptr});
}

}  // namespace loom::cuda
