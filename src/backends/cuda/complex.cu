// CUDA kernels of the complex family (parts, magnitude, argument, conjugate, complex(re, im)
// with broadcasting), on the rules of core/complex_semantics.h that the CPU kernels use.
#include "backends/cuda/cuda_kernels.h"
#include "backends/cuda/device/elementwise.cuh"
#include "core/complex_semantics.h"

namespace loom::cuda {

namespace {

using scalar::complex64;

struct RealF {
  __device__ float operator()(complex64 x) const { return x.re; }
};
struct ImagF {
  __device__ float operator()(complex64 x) const { return x.im; }
};
struct AbsF {
  __device__ float operator()(complex64 x) const { return scalar::complex_abs(x); }
};
struct Abs2F {
  __device__ float operator()(complex64 x) const { return scalar::complex_abs2(x); }
};
struct AngleF {
  __device__ float operator()(complex64 x) const { return scalar::angle(x); }
};
struct ConjF {
  __device__ complex64 operator()(complex64 x) const { return scalar::conj(x); }
};

template <class Out, class F>
void add_unary(Backend& b, const char* op) {
  b.add_kernel(op, Kernel{std::string("cuda.") + op,
                          [op](KernelContext& ctx, const ir::Node&, std::span<const TensorView> in,
                               std::span<TensorView> out) {
                            launch_unary<complex64, Out, F>(in[0].as<const complex64>(),
                                                            out[0].as<Out>(), out[0].numel(), F{},
                                                            stream_of(ctx), op);
                          }});
}

__global__ void complex_kernel(const float* __restrict__ re, const float* __restrict__ im,
                               complex64* __restrict__ out, int64_t n, StridedIndexer<2> ix) {
  int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    int64_t off[2];
    ix.offsets(i, off);
    out[i] = {re[off[0]], im[off[1]]};
  }
}

void run_complex(KernelContext& ctx, const ir::Node&, std::span<const TensorView> in,
                 std::span<TensorView> out) {
  const TensorView& o = out[0];
  int64_t n = o.numel();
  if (n == 0) return;
  auto ix = make_indexer<2>(
      o.shape, {broadcast_strides(in[0].shape, o.shape), broadcast_strides(in[1].shape, o.shape)});
  complex_kernel<<<std::min(blocks_for(n, kThreads), 65536u), kThreads, 0, stream_of(ctx)>>>(
      in[0].as<const float>(), in[1].as<const float>(), o.as<complex64>(), n, ix);
  check_launch("complex");
}

}  // namespace

void register_complex_kernels(Backend& b) {
  add_unary<float, RealF>(b, "real");
  add_unary<float, ImagF>(b, "imag");
  add_unary<float, AbsF>(b, "complex_abs");
  add_unary<float, Abs2F>(b, "complex_abs2");
  add_unary<float, AngleF>(b, "angle");
  add_unary<complex64, ConjF>(b, "conj");
  b.add_kernel("complex", Kernel{"cuda.complex", run_complex});
}

}  // namespace loom::cuda
