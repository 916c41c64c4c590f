// CPU kernels of the complex family: parts, magnitude, argument, conjugate, and complex(re,
// im) with broadcasting. The scalar rules are core/complex_semantics.h's, as on CUDA.
#include "backends/cpu/broadcast_loop.h"
#include "backends/cpu/cpu_kernels.h"
#include "core/complex_semantics.h"

namespace loom::cpu {

namespace {

using scalar::complex64;

template <class Out, class F>
void run_complex_unary(const TensorView& x, TensorView& y, F f) {
  const complex64* px = x.as<const complex64>();
  Out* py = y.as<Out>();
  parallel_for(x.numel(), kParallelGrain, [&](int64_t i) { py[i] = f(px[i]); });
}

void run_complex(KernelContext& ctx, const ir::Node&, std::span<const TensorView> in,
                 std::span<TensorView> out) {
  const float* re = in[0].as<const float>();
  const float* im = in[1].as<const float>();
  complex64* y = out[0].as<complex64>();
  BroadcastLayout<2> scratch;
  const auto& layout = *cached_broadcast_layout<2>(ctx, out[0].shape, {&in[0], &in[1]}, scratch);
  for_each_run(layout, out[0].numel(), [&](int64_t o, const auto& off, const auto& s, int64_t n) {
    for (int64_t j = 0; j < n; ++j) y[o + j] = {re[off[0] + j * s[0]], im[off[1] + j * s[1]]};
  });
}

template <class Out, Out (*f)(complex64)>
void add_unary(Backend& b, const char* op) {
  b.add_kernel(op,
               Kernel{std::string("cpu.") + op,
                      [](KernelContext&, const ir::Node&, std::span<const TensorView> in,
                         std::span<TensorView> out) { run_complex_unary<Out>(in[0], out[0], f); }});
}

float real_part(complex64 x) { return x.re; }
float imag_part(complex64 x) { return x.im; }
float magnitude(complex64 x) { return scalar::complex_abs(x); }
float power(complex64 x) { return scalar::complex_abs2(x); }
float argument(complex64 x) { return scalar::angle(x); }
complex64 conjugate(complex64 x) { return scalar::conj(x); }

}  // namespace

void register_complex_kernels(Backend& b) {
  add_unary<float, real_part>(b, "real");
  add_unary<float, imag_part>(b, "imag");
  add_unary<float, magnitude>(b, "complex_abs");
  add_unary<float, power>(b, "complex_abs2");
  add_unary<float, argument>(b, "angle");
  add_unary<complex64, conjugate>(b, "conj");
  b.add_kernel("complex", Kernel{"cpu.complex", run_complex});
}

}  // namespace loom::cpu
