// CPU kernels of the unary elementwise ops: one scalar function object per op in the table
// below, run by the shared broadcasting loop (which also reads strided inputs).
#include <algorithm>
#include <cmath>
#include <type_traits>

#include "backends/cpu/broadcast_loop.h"
#include "backends/cpu/elementwise.h"
#include "backends/cpu/simd.h"
#include "core/scalar_semantics.h"

namespace loom::cpu {

namespace {

// Transcendental ops see only floats (f16 and bf16 arrive as float); neg, abs and relu
// also see integers, with the shared rules (negation wraps around instead of overflowing).
#define LOOM_NUMERIC_UNARY(Name, rule)        \
  struct Name {                               \
    static constexpr bool kFloatOnly = false; \
    template <class C>                        \
    C operator()(C x) const {                 \
      return scalar::rule(x);                 \
    }                                         \
  };

LOOM_NUMERIC_UNARY(Neg, negate)
LOOM_NUMERIC_UNARY(Abs, absolute)
LOOM_NUMERIC_UNARY(Relu, relu)

#undef LOOM_NUMERIC_UNARY

#define LOOM_FLOAT_UNARY(Name, expr)                 \
  struct Name {                                      \
    static constexpr bool kFloatOnly = true;         \
    float operator()(float x) const { return expr; } \
  };

// exp runs through simd_exp (below); this form is not used for it.
LOOM_FLOAT_UNARY(Exp, std::exp(x))
LOOM_FLOAT_UNARY(Log, std::log(x))
LOOM_FLOAT_UNARY(Sqrt, std::sqrt(x))
LOOM_FLOAT_UNARY(Rsqrt, 1.0f / std::sqrt(x))
LOOM_FLOAT_UNARY(Sin, std::sin(x))
LOOM_FLOAT_UNARY(Cos, std::cos(x))
LOOM_FLOAT_UNARY(Tanh, std::tanh(x))
LOOM_FLOAT_UNARY(Sigmoid, 1.0f / (1.0f + std::exp(-x)))
LOOM_FLOAT_UNARY(Silu, x / (1.0f + std::exp(-x)))
LOOM_FLOAT_UNARY(Gelu, scalar::gelu(x))
LOOM_FLOAT_UNARY(GeluTanh, scalar::gelu_tanh(x))

#undef LOOM_FLOAT_UNARY

template <class Op, class T>
void unary_loop(KernelContext& ctx, const TensorView& in, TensorView& out) {
  const T* x = in.as<const T>();
  T* y = out.as<T>();
  const Op op;
  BroadcastLayout<1> scratch;
  const auto& layout = *cached_broadcast_layout<1>(ctx, out.shape, {&in}, scratch);
  for_each_run(layout, out.numel(), [&](int64_t o, const auto& off, const auto& s, int64_t n) {
    const T* px = x + off[0];
    T* py = y + o;
    if constexpr (std::is_same_v<Op, Exp> && (std::is_same_v<T, float> || is_half_v<T>)) {
      simd_exp(px, s[0], py, n);  // vectorised where the CPU allows, the same bits everywhere
      return;
    }
    if constexpr (is_half_v<T>) {
      // f16/bf16: convert a block to float, compute, convert the block back.
      float buffer[kHalfBlock];
      for (int64_t j0 = 0; j0 < n; j0 += kHalfBlock) {
        const int64_t m = std::min(kHalfBlock, n - j0);
        load_half_block(px + j0 * s[0], s[0], m, buffer);
        for (int64_t j = 0; j < m; ++j) buffer[j] = op(buffer[j]);
        convert_from_float(buffer, py + j0, m);
      }
    } else if (s[0] == 1) {
      for (int64_t j = 0; j < n; ++j) store(py + j, op(load(px + j)));
    } else {
      for (int64_t j = 0; j < n; ++j) store(py + j, op(load(px + j * s[0])));
    }
  });
}

template <class Op>
void run_unary(KernelContext& ctx, const ir::Node&, std::span<const TensorView> in,
               std::span<TensorView> out) {
  if constexpr (Op::kFloatOnly) {
    dispatch_float(in[0].dtype,
                   [&](auto tag) { unary_loop<Op, decltype(tag)>(ctx, in[0], out[0]); });
  } else {
    dispatch_all(in[0].dtype, [&](auto tag) {
      using T = decltype(tag);
      if constexpr (std::is_same_v<T, bool>) {
        fail(ErrorKind::internal, "bool operand reached a numeric unary kernel");
      } else {
        unary_loop<Op, T>(ctx, in[0], out[0]);
      }
    });
  }
}

constexpr ElementwiseKernel kUnaryKernels[] = {
    {"neg", run_unary<Neg>},         {"abs", run_unary<Abs>},
    {"relu", run_unary<Relu>},       {"exp", run_unary<Exp>},
    {"log", run_unary<Log>},         {"sqrt", run_unary<Sqrt>},
    {"rsqrt", run_unary<Rsqrt>},     {"sin", run_unary<Sin>},
    {"cos", run_unary<Cos>},         {"tanh", run_unary<Tanh>},
    {"sigmoid", run_unary<Sigmoid>}, {"silu", run_unary<Silu>},
    {"gelu", run_unary<Gelu>},       {"gelu_tanh", run_unary<GeluTanh>},
};

}  // namespace

void register_unary_kernels(Backend& b) { add_elementwise_kernels(b, kUnaryKernels); }

}  // namespace loom::cpu
