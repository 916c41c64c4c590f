// CPU kernels of the binary elementwise ops: one scalar function object per op in the table
// below, run by one broadcasting loop.
#include <algorithm>
#include <cmath>
#include <type_traits>

#include "backends/cpu/broadcast_loop.h"
#include "backends/cpu/elementwise.h"

namespace loom::cpu {

namespace {

// Integer arithmetic wraps around (two's complement, as the hardware does) because signed
// overflow is undefined behaviour in C++ and user data must not be able to cause it.
template <class C>
C wrapping_add(C a, C b) {
  using U = std::make_unsigned_t<C>;
  return C(U(a) + U(b));
}
template <class C>
C wrapping_sub(C a, C b) {
  using U = std::make_unsigned_t<C>;
  return C(U(a) - U(b));
}
template <class C>
C wrapping_mul(C a, C b) {
  using U = std::make_unsigned_t<C>;
  return C(U(a) * U(b));
}

// Exponentiation by squaring. A negative exponent gives the truncated value of 1 / a^-b:
// 0 except for bases 1 and -1 (and 0 for base 0, matching division by zero).
template <class C>
C integer_pow(C base, C exponent) {
  if constexpr (std::is_signed_v<C>) {
    if (exponent < 0) {
      if (base == 1) return 1;
      if (base == -1) return (exponent & 1) ? C(-1) : C(1);
      return 0;
    }
  }
  C result = 1;
  for (auto e = exponent; e != 0; e /= 2) {
    if (e & 1) result = wrapping_mul(result, base);
    base = wrapping_mul(base, base);
  }
  return result;
}

// Each op: the scalar function, whether it yields bool, and whether it takes bool operands.
struct Add {
  static constexpr bool kCompare = false, kTakesBool = false;
  template <class C>
  C operator()(C a, C b) const {
    if constexpr (std::is_integral_v<C>)
      return wrapping_add(a, b);
    else
      return a + b;
  }
};

struct Sub {
  static constexpr bool kCompare = false, kTakesBool = false;
  template <class C>
  C operator()(C a, C b) const {
    if constexpr (std::is_integral_v<C>)
      return wrapping_sub(a, b);
    else
      return a - b;
  }
};

struct Mul {
  static constexpr bool kCompare = false, kTakesBool = false;
  template <class C>
  C operator()(C a, C b) const {
    if constexpr (std::is_integral_v<C>)
      return wrapping_mul(a, b);
    else
      return a * b;
  }
};

struct Div {
  static constexpr bool kCompare = false, kTakesBool = false;
  template <class C>
  C operator()(C a, C b) const {
    if constexpr (std::is_integral_v<C>) {
      // Integer division truncates toward zero. Division by zero is defined as 0, and
      // min / -1 is computed as a wrapping negation: both would trap the process on x86.
      if (b == 0) return 0;
      if constexpr (std::is_signed_v<C>) {
        if (b == -1) return wrapping_sub(C(0), a);
      }
      return C(a / b);
    } else {
      return a / b;
    }
  }
};

struct Pow {
  static constexpr bool kCompare = false, kTakesBool = false;
  template <class C>
  C operator()(C a, C b) const {
    if constexpr (std::is_integral_v<C>)
      return integer_pow(a, b);
    else
      return std::pow(a, b);
  }
};

// maximum and minimum propagate NaN, as numpy and PyTorch do.
struct Maximum {
  static constexpr bool kCompare = false, kTakesBool = false;
  template <class C>
  C operator()(C a, C b) const {
    if constexpr (std::is_floating_point_v<C>) {
      if (std::isnan(a)) return a;
    }
    return a > b ? a : b;
  }
};

struct Minimum {
  static constexpr bool kCompare = false, kTakesBool = false;
  template <class C>
  C operator()(C a, C b) const {
    if constexpr (std::is_floating_point_v<C>) {
      if (std::isnan(a)) return a;
    }
    return a < b ? a : b;
  }
};

struct Equal {
  static constexpr bool kCompare = true, kTakesBool = true;
  template <class C>
  bool operator()(C a, C b) const {
    return a == b;
  }
};

struct Less {
  static constexpr bool kCompare = true, kTakesBool = false;
  template <class C>
  bool operator()(C a, C b) const {
    return a < b;
  }
};

struct Greater {
  static constexpr bool kCompare = true, kTakesBool = false;
  template <class C>
  bool operator()(C a, C b) const {
    return a > b;
  }
};

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
