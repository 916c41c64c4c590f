// Unary math on float dtypes (neg, abs and relu also on integers): one vectorised pass.
#include <type_traits>

#include "backends/cuda/cuda_kernels.h"
#include "backends/cuda/device/elementwise.cuh"
#include "core/scalar_semantics.h"

namespace loom::cuda {

namespace {

// neg, abs and relu with the rules of core/scalar_semantics.h (integers negate with
// wrap-around), as on the CPU.
struct NegF {
  template <class C>
  __device__ C operator()(C x) const {
    return scalar::negate(x);
  }
};
struct AbsF {
  template <class C>
  __device__ C operator()(C x) const {
    return scalar::absolute(x);
  }
};
struct ReluF {
  template <class C>
  __device__ C operator()(C x) const {
    return scalar::relu(x);
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
  __device__ float operator()(float x) const { return scalar::gelu(x); }
};
struct GeluTanhF {
  __device__ float operator()(float x) const { return scalar::gelu_tanh(x); }
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
