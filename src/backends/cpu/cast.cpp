// CPU kernel of cast, between every pair of f32, f16, bf16, i8, u8, i32, i64 and bool.
//
// Conversions: to bool is "!= 0" (NaN is true); float to integer truncates toward zero,
// saturates at the integer's range and maps NaN to 0 (C++ leaves those undefined, and
// user data must not reach undefined behaviour); integer to narrower integer wraps
// (two's complement); to f16/bf16 rounds to nearest even through f32.
#include <cmath>
#include <limits>
#include <type_traits>

#include "backends/cpu/broadcast_loop.h"
#include "backends/cpu/elementwise.h"

namespace loom::cpu {

namespace {

template <class To, class From>
To convert(From v) {
  if constexpr (std::is_same_v<To, bool>) {
    return v != From(0);
  } else if constexpr (std::is_integral_v<To> && std::is_floating_point_v<From>) {
    if (std::isnan(v)) return To(0);
    const double t = std::trunc(double(v));
    // 2^digits is the first value past To's maximum and is exact in double.
    const double past_max = std::ldexp(1.0, std::numeric_limits<To>::digits);
    if (t >= past_max) return std::numeric_limits<To>::max();
    if (t < double(std::numeric_limits<To>::min())) return std::numeric_limits<To>::min();
    return To(t);
  } else {
    return To(v);
  }
}

template <class In, class Out>
void cast_loop(const TensorView& in, TensorView& out) {
  using To = compute_t<Out>;
  const In* x = in.as<const In>();
  Out* y = out.as<Out>();
  const auto layout = broadcast_layout<1>(out.shape, {&in});
  for_each_run(layout, out.numel(), [&](int64_t o, const auto& off, const auto& s, int64_t n) {
    const In* px = x + off[0];
    for (int64_t j = 0; j < n; ++j) store(y + o + j, convert<To>(load_element(px + j * s[0])));
  });
}

void run_cast(KernelContext&, const ir::Node&, std::span<const TensorView> in,
              std::span<TensorView> out) {
  dispatch_all(in[0].dtype, [&](auto in_tag) {
    dispatch_all(out[0].dtype, [&](auto out_tag) {
      cast_loop<decltype(in_tag), decltype(out_tag)>(in[0], out[0]);
    });
  });
}

constexpr ElementwiseKernel kCastKernels[] = {{"cast", run_cast}};

}  // namespace

void register_cast_kernels(Backend& b) { add_elementwise_kernels(b, kCastKernels); }

}  // namespace loom::cpu
