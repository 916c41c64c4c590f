// CPU kernel of cast, between every pair of f32, f16, bf16, i8, u8, i32, i64 and bool.
//
// Conversions follow core/scalar_semantics.h (shared with the CUDA cast): to bool is "!= 0"
// (NaN is true); float to integer truncates toward zero, saturates and maps NaN to 0;
// integer to narrower integer wraps; to f16/bf16 rounds to nearest even through f32.
#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

#include "backends/cpu/broadcast_loop.h"
#include "backends/cpu/convert.h"
#include "backends/cpu/elementwise.h"

namespace loom::cpu {

namespace {

template <class In, class Out>
void cast_loop(KernelContext& ctx, const TensorView& in, TensorView& out) {
  using To = compute_t<Out>;
  const In* x = in.as<const In>();
  Out* y = out.as<Out>();
  BroadcastLayout<1> scratch;
  const auto& layout = *cached_broadcast_layout<1>(ctx, out.shape, {&in}, scratch);
  for_each_run(layout, out.numel(), [&](int64_t o, const auto& off, const auto& s, int64_t n) {
    const In* px = x + off[0];
    if constexpr (is_half_v<In> || is_half_v<Out>) {
      // Block conversions for the 16-bit float side (the f32 <-> f16 casts of mixed precision).
      compute_t<In> source[kHalfBlock];
      To converted[kHalfBlock];
      for (int64_t j0 = 0; j0 < n; j0 += kHalfBlock) {
        const int64_t m = std::min(kHalfBlock, n - j0);
        if constexpr (is_half_v<In>) {
          load_half_block(px + j0 * s[0], s[0], m, source);
        } else {
          for (int64_t j = 0; j < m; ++j) source[j] = load_element(px + (j0 + j) * s[0]);
        }
        if constexpr (is_half_v<Out>) {
          for (int64_t j = 0; j < m; ++j) converted[j] = convert<To>(source[j]);
          convert_from_float(converted, y + o + j0, m);
        } else {
          for (int64_t j = 0; j < m; ++j) store(y + o + j0 + j, convert<To>(source[j]));
        }
      }
    } else {
      for (int64_t j = 0; j < n; ++j) store(y + o + j, convert<To>(load_element(px + j * s[0])));
    }
  });
}

void run_cast(KernelContext& ctx, const ir::Node&, std::span<const TensorView> in,
              std::span<TensorView> out) {
  dispatch_all(in[0].dtype, [&](auto in_tag) {
    dispatch_all(out[0].dtype, [&](auto out_tag) {
      cast_loop<decltype(in_tag), decltype(out_tag)>(ctx, in[0], out[0]);
    });
  });
}

constexpr ElementwiseKernel kCastKernels[] = {{"cast", run_cast}};

}  // namespace

void register_cast_kernels(Backend& b) { add_elementwise_kernels(b, kCastKernels); }

}  // namespace loom::cpu
