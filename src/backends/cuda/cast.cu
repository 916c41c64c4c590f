// cast between any two of f32, f16, bf16, i8, u8, i32, i64 and bool, with the conversions
// of core/scalar_semantics.h that the CPU uses too: to bool is "!= 0" (NaN is true); float to
// integer truncates toward zero, saturates and maps NaN to 0; integer to narrower integer
// wraps; to f16/bf16 rounds to nearest even through f32. A bool byte other than 0 reads as
// true.
#include <type_traits>

#include "backends/cuda/cuda_kernels.h"
#include "backends/cuda/device/elementwise.cuh"
#include "core/scalar_semantics.h"

namespace loom::cuda {

namespace {

// Converts the input's compute value to the output's compute type; bool input arrives as
// its storage byte (kFromBool).
template <class Out, bool kFromBool>
struct ConvertF {
  template <class C>
  __device__ compute_t<Out> operator()(C x) const {
    if constexpr (kFromBool) {
      return scalar::convert<compute_t<Out>>(bool(x != 0));
    } else {
      return scalar::convert<compute_t<Out>>(x);
    }
  }
};

template <class In, class Out>
void launch_cast(const TensorView& x, TensorView& y, cudaStream_t stream) {
  if constexpr (std::is_same_v<In, bool>) {
    launch_unary<uint8_t, Out, ConvertF<Out, true>>(x.as<const uint8_t>(), y.as<Out>(), y.numel(),
                                                    {}, stream, "cast");
  } else {
    launch_unary<In, Out, ConvertF<Out, false>>(x.as<const In>(), y.as<Out>(), y.numel(), {},
                                                stream, "cast");
  }
}

void cast_values(const TensorView& x, TensorView& y, cudaStream_t stream) {
  dispatch_all(x.dtype, [&](auto in_tag) {
    dispatch_all(y.dtype, [&](auto out_tag) {
      launch_cast<decltype(in_tag), decltype(out_tag)>(x, y, stream);
    });
  });
}

void run_cast(KernelContext& ctx, const ir::Node&, std::span<const TensorView> in,
              std::span<TensorView> out) {
  const TensorView& x = in[0];
  TensorView& y = out[0];
  if (x.dtype == y.dtype && x.dtype != DType::boolean) {
    if (y.nbytes() > 0)
      check_cuda(
          cudaMemcpyAsync(y.data, x.data, y.nbytes(), cudaMemcpyDeviceToDevice, stream_of(ctx)),
          "cast (same dtype copy)");
    return;
  }
  cast_values(x, y, stream_of(ctx));
}

}  // namespace

void cast_on_device(const void* x, DType x_dtype, void* y, DType y_dtype, int64_t count,
                    void* stream) {
  if (count <= 0) return;
  const TensorView in{const_cast<void*>(x), x_dtype, Extents{count}, {}};
  TensorView out{y, y_dtype, Extents{count}, {}};
  cast_values(in, out, static_cast<cudaStream_t>(stream));
}

void register_cast_kernels(Backend& b) {
  b.add_kernel("cast", Kernel{"cuda.cast", run_cast, nullptr});
}

}  // namespace loom::cuda
