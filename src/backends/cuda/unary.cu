// Unary math on float dtypes (neg, abs and relu also on integers): one vectorised pass.
#include <type_traits>

#include "backends/cuda/cuda_kernels.h"
#include "backends/cuda/device/elementwise.cuh"

namespace loom::cuda {

namespace {

// Integers negate with wrap-around (two's complement), as on the CPU.
template <class C>
__device__ __forceinline__ C wrapping_neg(C x) {
  using U = std::make_unsigned_t<C>;
  return C(U(U(0) - U(x)));
}

struct NegF {
  template <class C>
  __device__ C operator()(C x) const {
    if constexpr (std::is_integral_v<C>) {
      return wrapping_neg(x);
    } else {
      return -x;
    }
  }
};
struct AbsF {
  template <class C>
  __device__ C operator()(C x) const {
    if constexpr (std::is_floating_point_v<C>) {
      return fabsf(x);
    } else if constexpr (std::is_signed_v<C>) {
      return x < 0 ? wrapping_neg(x) : x;
    } else {
      return x;
    }
  }
};
// relu keeps NaN (x < 0 is false for it), as PyTorch does.
struct ReluF {
  template <class C>
  __device__ C operator()(C x) const {
    if constexpr (std::is_unsigned_v<C>) {
      return x;
    } else {
      return x < C(0) ? C(0) : x;
    }
  }
};
struct ExpF {
  __device__ float operator()(float x) const { return expf(x); }
};
struct LogF {
  __device__ float operator()(float x) const { return logf(x); }
};
struct SqrtF {
  __device__ float operator()(float x) const { return sqrtf(x); }
};
struct RsqrtF {
  __device__ float operator()(float x) const { return 1.0f / sqrtf(x); }
};
struct SinF {
  __device__ float operator()(float x) const { return sinf(x); }
};
struct CosF {
  __device__ float operator()(float x) const { return cosf(x); }
};
struct TanhF {
  __device__ float operator()(float x) const { return tanhf(x); }
};
struct SigmoidF {
  __device__ float operator()(float x) const { return 1.0f / (1.0f + expf(-x)); }
};
struct SiluF {
  __device__ float operator()(float x) const { return x / (1.0f + expf(-x)); }
};
struct GeluF {
  __device__ float operator()(float x) const {
    return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
  }
};
struct GeluTanhF {
  __device__ float operator()(float x) const {
    float inner = 0.79788456080286536f * (x + 0.044715f * x * x * x);
    return 0.5f * x * (1.0f + tanhf(inner));
  }
};

template <class F, bool kIntegers>
void add_unary(Backend& b, const char* op) {
  b.add_kernel(op, Kernel{std::string("cuda.") + op,
                          [op](KernelContext& ctx, const ir::Node&, std::span<const TensorView> in,
                               std::span<TensorView> out) {
                            auto body = [&](auto tag) {
                              using T = decltype(tag);
                              launch_unary<T, T, F>(in[0].as<const T>(), out[0].as<T>(),
                                                    out[0].numel(), F{}, stream_of(ctx), op);
                            };
                            if constexpr (kIntegers) {
                              dispatch_numeric(in[0].dtype, body);
                            } else {
                              dispatch_float(in[0].dtype, body);
                            }
                          },
                          nullptr});
}

}  // namespace

void register_unary_kernels(Backend& b) {
  add_unary<NegF, true>(b, "neg");
  add_unary<AbsF, true>(b, "abs");
  add_unary<ReluF, true>(b, "relu");
  add_unary<ExpF, false>(b, "exp");
  add_unary<LogF, false>(b, "log");
  add_unary<SqrtF, false>(b, "sqrt");
  add_unary<RsqrtF, false>(b, "rsqrt");
  add_unary<SinF, false>(b, "sin");
  add_unary<CosF, false>(b, "cos");
  add_unary<TanhF, false>(b, "tanh");
  add_unary<SigmoidF, false>(b, "sigmoid");
  add_unary<SiluF, false>(b, "silu");
  add_unary<GeluF, false>(b, "gelu");
  add_unary<GeluTanhF, false>(b, "gelu_tanh");
}

}  // namespace loom::cuda
