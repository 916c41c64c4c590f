// Binary arithmetic, comparisons and where, with numpy broadcasting.
#include <type_traits>

#include "backends/cuda/cuda_kernels.h"
#include "backends/cuda/device/elementwise.cuh"
#include "core/complex_semantics.h"
#include "core/scalar_semantics.h"

namespace loom::cuda {

namespace {

// Functors see the compute type (f32 for f16/bf16, the integer type itself otherwise) and
// apply the rules of core/scalar_semantics.h, which the CPU kernels use too: integer
// arithmetic wraps, division truncates (x / 0 is 0), maximum / minimum propagate NaN.
#define LOOM_ARITHMETIC_F(Name, rule)         \
  struct Name {                               \
    template <class C>                        \
    __device__ C operator()(C a, C b) const { \
      return scalar::rule(a, b);              \
    }                                         \
  };

LOOM_ARITHMETIC_F(AddF, add)
LOOM_ARITHMETIC_F(SubF, sub)
LOOM_ARITHMETIC_F(MulF, mul)
LOOM_ARITHMETIC_F(DivF, div)
LOOM_ARITHMETIC_F(PowF, pow)
LOOM_ARITHMETIC_F(MaximumF, maximum)
LOOM_ARITHMETIC_F(MinimumF, minimum)

#undef LOOM_ARITHMETIC_F

struct EqualF {
  template <class C>
  __device__ bool operator()(C a, C b) const {
    return a == b;
  }
};
// bool operands are read as bytes: any non-zero byte is true.
struct EqualBoolF {
  template <class C>
  __device__ bool operator()(C a, C b) const {
    return (a != 0) == (b != 0);
  }
};
struct LessF {
  template <class C>
  __device__ bool operator()(C a, C b) const {
    return a < b;
  }
};
struct GreaterF {
  template <class C>
  __device__ bool operator()(C a, C b) const {
    return a > b;
  }
};

template <class T, class Out, class F>
void run_binary(const TensorView& a, const TensorView& b, const TensorView& out,
                cudaStream_t stream, const char* name) {
  int64_t n = out.numel();
  if (n == 0) return;
  auto* pa = a.as<const T>();
  auto* pb = b.as<const T>();
  auto* po = out.as<Out>();
  if constexpr (std::is_same_v<T, Out> && is_float_v<T>) {
    bool a_scalar = a.numel() == 1, b_scalar = b.numel() == 1;
    bool same_a = a.numel() == n || a_scalar, same_b = b.numel() == n || b_scalar;
    if (same_a && same_b && (a_scalar || aligned16(pa)) && (b_scalar || aligned16(pb)) &&
        aligned16(po)) {
      int64_t nvec = n / kVec<T>;
      binary_vec_kernel<T, F>
          <<<blocks_for(nvec, int64_t(kThreads) * kUnroll), kThreads, 0, stream>>>(
              pa, pb, po, n, a_scalar, b_scalar, F{});
      check_launch(name);
      return;
    }
  }
  auto ix = make_indexer<2>(
      out.shape, {broadcast_strides(a.shape, out.shape), broadcast_strides(b.shape, out.shape)});
  binary_strided_kernel<T, Out, F>
      <<<std::min(blocks_for(n, kThreads), 65536u), kThreads, 0, stream>>>(pa, pb, po, n, ix, F{});
  check_launch(name);
}

// add, sub, mul and div also take complex64 (core/complex_semantics.h, as on the CPU).
template <class F>
inline constexpr bool kTakesComplex = std::is_same_v<F, AddF> || std::is_same_v<F, SubF> ||
                                      std::is_same_v<F, MulF> || std::is_same_v<F, DivF>;

template <class F, bool kCompare>
void add_binary(Backend& b, const char* op) {
  b.add_kernel(op, Kernel{std::string("cuda.") + op,
                          [op](KernelContext& ctx, const ir::Node&, std::span<const TensorView> in,
                               std::span<TensorView> out) {
                            if constexpr (kTakesComplex<F>) {
                              if (in[0].dtype == DType::c64) {
                                using C = scalar::complex64;
                                run_binary<C, C, F>(in[0], in[1], out[0], stream_of(ctx), op);
                                return;
                              }
                            }
                            if constexpr (std::is_same_v<F, EqualF>) {
                              if (in[0].dtype == DType::boolean) {
                                run_binary<uint8_t, bool, EqualBoolF>(in[0], in[1], out[0],
                                                                      stream_of(ctx), op);
                                return;
                              }
                            }
                            dispatch_numeric(in[0].dtype, [&](auto tag) {
                              using T = decltype(tag);
                              using Out = std::conditional_t<kCompare, bool, T>;
                              run_binary<T, Out, F>(in[0], in[1], out[0], stream_of(ctx), op);
                            });
                          },
                          nullptr});
}

template <class T>
__global__ void where_kernel(const uint8_t* __restrict__ cond, const T* __restrict__ a,
                             const T* __restrict__ b, T* __restrict__ out, int64_t n,
                             StridedIndexer<3> ix) {
  int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    int64_t off[3];
    ix.offsets(i, off);
    out[i] = cond[off[0]] != 0 ? a[off[1]] : b[off[2]];
  }
}

void run_where(KernelContext& ctx, const ir::Node&, std::span<const TensorView> in,
               std::span<TensorView> out) {
  const TensorView& o = out[0];
  int64_t n = o.numel();
  if (n == 0) return;
  auto ix = make_indexer<3>(
      o.shape, {broadcast_strides(in[0].shape, o.shape), broadcast_strides(in[1].shape, o.shape),
                broadcast_strides(in[2].shape, o.shape)});
  dispatch_bytes(element_bytes(o.dtype), [&](auto tag) {
    using T = decltype(tag);
    where_kernel<T><<<std::min(blocks_for(n, kThreads), 65536u), kThreads, 0, stream_of(ctx)>>>(
        in[0].as<const uint8_t>(), in[1].as<const T>(), in[2].as<const T>(), o.as<T>(), n, ix);
    check_launch("where");
  });
}

}  // namespace

void register_elementwise_kernels(Backend& b) {
  add_binary<AddF, false>(b, "add");
  add_binary<SubF, false>(b, "sub");
  add_binary<MulF, false>(b, "mul");
  add_binary<DivF, false>(b, "div");
  add_binary<PowF, false>(b, "pow");
  add_binary<MaximumF, false>(b, "maximum");
  add_binary<MinimumF, false>(b, "minimum");
  add_binary<EqualF, true>(b, "equal");
  add_binary<LessF, true>(b, "less");
  add_binary<GreaterF, true>(b, "greater");
  b.add_kernel("where", Kernel{"cuda.where", run_where, nullptr});
}

}  // namespace loom::cuda
