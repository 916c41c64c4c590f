// cast between any two of f32, f16, bf16, i8, u8, i32, i64 and bool.
#include <type_traits>

#include "backends/cuda/cuda_kernels.h"
#include "backends/cuda/device/elementwise.cuh"

namespace loom::cuda {

namespace {

// Converts through the source's compute type, as the CPU's load/store do.
template <class Out>
struct ConvertF {
  template <class C>
  __device__ C operator()(C x) const { return x; }
};

void run_cast(KernelContext& ctx, const ir::Node&, std::span<const TensorView> in,
              std::span<TensorView> out) {
  const TensorView& x = in[0];
  TensorView& y = out[0];
  if (x.dtype == y.dtype) {
    check_cuda(cudaMemcpyAsync(y.data, x.data, y.nbytes(), cudaMemcpyDeviceToDevice,
                               stream_of(ctx)),
               "cast (same dtype copy)");
    return;
  }
  dispatch_all(x.dtype, [&](auto in_tag) {
    using In = decltype(in_tag);
    dispatch_all(y.dtype, [&](auto out_tag) {
      using Out = decltype(out_tag);
      launch_unary<In, Out, ConvertF<Out>>(x.as<const In>(), y.as<Out>(), y.numel(),
                                           ConvertF<Out>{}, stream_of(ctx), "cast");
    });
  });
}

}  // namespace

void register_cast_kernels(Backend& b) { b.add_kernel("cast", Kernel{"cuda.cast", run_cast, nullptr}); }

}  // namespace loom::cuda
