// complex64 add, sub, mul and div on the CPU with broadcasting, through the shared loop and
// the rules of core/complex_semantics.h. Called by the binary kernels for c64 operands.
#pragma once

#include "backends/cpu/broadcast_loop.h"
#include "core/complex_semantics.h"

namespace loom::cpu {

template <class Rule>
void run_complex_binary(KernelContext& ctx, std::span<const TensorView> in,
                        std::span<TensorView> out, Rule rule) {
  using C = scalar::complex64;
  const C* a = in[0].as<const C>();
  const C* b = in[1].as<const C>();
  C* y = out[0].as<C>();
  BroadcastLayout<2> scratch;
  const auto& layout = *cached_broadcast_layout<2>(ctx, out[0].shape, {&in[0], &in[1]}, scratch);
  for_each_run(layout, out[0].numel(), [&](int64_t o, const auto& off, const auto& s, int64_t n) {
    const C* pa = a + off[0];
    const C* pb = b + off[1];
    for (int64_t j = 0; j < n; ++j) y[o + j] = rule(pa[j * s[0]], pb[j * s[1]]);
  });
}

}  // namespace loom::cpu
