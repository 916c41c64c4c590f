// CPU kernels of the binary elementwise ops: one scalar function object per op in the table
// below, run by one broadcasting loop.
#include <algorithm>
#include <cmath>
#include <type_traits>

#include "backends/cpu/broadcast_loop.h"
#include "backends/cpu/complex_binary.h"
#include "backends/cpu/elementwise.h"
#include "backends/cpu/simd.h"
#include "core/scalar_semantics.h"

namespace loom::cpu {

namespace {

// Each op: the shared scalar rule (core/scalar_semantics.h, core/complex_semantics.h),
// whether it yields bool, whether it takes bool operands, and whether it takes complex64.
#define LOOM_ARITHMETIC_OP(Name, rule, complex)                                     \
  struct Name {                                                                     \
    static constexpr bool kCompare = false, kTakesBool = false, kComplex = complex; \
    template <class C>                                                              \
    C operator()(C a, C b) const {                                                  \
      return scalar::rule(a, b);                                                    \
    }                                                                               \
  };

LOOM_ARITHMETIC_OP(Add, add, true)
LOOM_ARITHMETIC_OP(Sub, sub, true)
LOOM_ARITHMETIC_OP(Mul, mul, true)
LOOM_ARITHMETIC_OP(Div, div, true)
LOOM_ARITHMETIC_OP(Pow, pow, false)
LOOM_ARITHMETIC_OP(Maximum, maximum, false)
LOOM_ARITHMETIC_OP(Minimum, minimum, false)

#undef LOOM_ARITHMETIC_OP

struct Equal {
  static constexpr bool kCompare = true, kTakesBool = true, kComplex = false;
  template <class C>
  bool operator()(C a, C b) const {
    return a == b;
  }
};

struct Less {
  static constexpr bool kCompare = true, kTakesBool = false, kComplex = false;
  template <class C>
  bool operator()(C a, C b) const {
    return a < b;
  }
};

struct Greater {
  static constexpr bool kCompare = true, kTakesBool = false, kComplex = false;
  template <class C>
  bool operator()(C a, C b) const {
    return a > b;
  }
};

// The ops with AVX2 / AVX-512 loops for f32, f16 and bf16 runs (simd.h).
template <class Op>
constexpr bool kHasSimd = std::is_same_v<Op, Add> || std::is_same_v<Op, Sub> ||
                          std::is_same_v<Op, Mul> || std::is_same_v<Op, Div>;

template <class Op>
constexpr SimdBinary simd_op() {
  if constexpr (std::is_same_v<Op, Add>)
    return SimdBinary::add;
  else if constexpr (std::is_same_v<Op, Sub>)
    return SimdBinary::sub;
  else if constexpr (std::is_same_v<Op, Mul>)
    return SimdBinary::mul;
  else
    return SimdBinary::div;
}

// f16/bf16 operands: convert a block to float, compute, convert the block back.
template <class Op, class T, class R>
void binary_half_run(const Op& op, const T* pa, int64_t sa, const T* pb, int64_t sb, R* py,
                     int64_t n) {
  float xa[kHalfBlock], xb[kHalfBlock], xy[kHalfBlock];
  for (int64_t j0 = 0; j0 < n; j0 += kHalfBlock) {
    const int64_t m = std::min(kHalfBlock, n - j0);
    load_half_block(pa + j0 * sa, sa, m, xa);
    load_half_block(pb + j0 * sb, sb, m, xb);
    if constexpr (std::is_same_v<R, bool>) {
      for (int64_t j = 0; j < m; ++j) py[j0 + j] = op(xa[j], xb[j]);
    } else {
      for (int64_t j = 0; j < m; ++j) xy[j] = op(xa[j], xb[j]);
      convert_from_float(xy, py + j0, m);
    }
  }
}

template <class Op>
void run_binary(KernelContext& ctx, const ir::Node&, std::span<const TensorView> in,
                std::span<TensorView> out) {
  if (in[0].dtype == DType::c64) {
    if constexpr (Op::kComplex)
      run_complex_binary(ctx, in, out,
                         [](scalar::complex64 a, scalar::complex64 b) { return Op{}(a, b); });
    else
      fail(ErrorKind::internal, "complex operands reached a real-only binary kernel");
    return;
  }
  dispatch_all(in[0].dtype, [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_same_v<T, bool> && !Op::kTakesBool) {
      fail(ErrorKind::internal, "bool operands reached an arithmetic kernel");
    } else {
      using R = std::conditional_t<Op::kCompare, bool, T>;
      const T* a = in[0].as<const T>();
      const T* b = in[1].as<const T>();
      R* y = out[0].as<R>();
      const Op op;
      BroadcastLayout<2> scratch;
      const auto& layout =
          *cached_broadcast_layout<2>(ctx, out[0].shape, {&in[0], &in[1]}, scratch);
      for_each_run(
          layout, out[0].numel(), [&](int64_t o, const auto& off, const auto& s, int64_t n) {
            const T* pa = a + off[0];
            const T* pb = b + off[1];
            R* py = y + o;
            if constexpr (kHasSimd<Op> && (std::is_same_v<T, float> || is_half_v<T>)) {
              // Runs contiguous or with a scalar operand take the vector loops when the CPU
              // has them (the same IEEE operations, so the same results).
              if (s[0] <= 1 && s[1] <= 1 && (s[0] | s[1]) != 0 &&
                  simd_binary(simd_op<Op>(), pa, s[0], pb, s[1], py, n))
                return;
            }
            if constexpr (is_half_v<T>) {
              binary_half_run(op, pa, s[0], pb, s[1], py, n);
            } else if (s[0] == 1 && s[1] == 1) {
              // Same-shape and tensor-with-scalar runs get loops the compiler vectorises.
              for (int64_t j = 0; j < n; ++j)
                store(py + j, op(load_element(pa + j), load_element(pb + j)));
            } else if (s[0] == 1 && s[1] == 0) {
              const auto vb = load_element(pb);
              for (int64_t j = 0; j < n; ++j) store(py + j, op(load_element(pa + j), vb));
            } else if (s[0] == 0 && s[1] == 1) {
              const auto va = load_element(pa);
              for (int64_t j = 0; j < n; ++j) store(py + j, op(va, load_element(pb + j)));
            } else {
              for (int64_t j = 0; j < n; ++j)
                store(py + j, op(load_element(pa + j * s[0]), load_element(pb + j * s[1])));
            }
          });
    }
  });
}

constexpr ElementwiseKernel kBinaryKernels[] = {
    {"add", run_binary<Add>},         {"sub", run_binary<Sub>},
    {"mul", run_binary<Mul>},         {"div", run_binary<Div>},
    {"pow", run_binary<Pow>},         {"maximum", run_binary<Maximum>},
    {"minimum", run_binary<Minimum>}, {"equal", run_binary<Equal>},
    {"less", run_binary<Less>},       {"greater", run_binary<Greater>},
};

}  // namespace

void register_binary_kernels(Backend& b) { add_elementwise_kernels(b, kBinaryKernels); }

}  // namespace loom::cpu
