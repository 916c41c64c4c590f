// arange and rope. arange converts its double values with the shared rules (an integer
// dtype saturates, as cast does). rope reads its position offset on the device (a run-time
// tensor), so a captured decode step replays correctly at every position; positions and
// angles are computed in double by the functions the CPU kernel uses
// (core/scalar_semantics.h), so long positions keep their accuracy and any offset is defined.
#include "backends/cuda/cuda_error.h"
#include "backends/cuda/cuda_kernels.h"
#include "backends/cuda/device/launch.cuh"
#include "backends/cuda/device/pdl.cuh"
#include "backends/cuda/device/types.cuh"
#include "core/scalar_semantics.h"
#include "ops/position_params.h"

namespace loom::cuda {

namespace {

template <class T>
__global__ void arange_kernel(T* __restrict__ out, int64_t n, double start, double step) {
  int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    out[i] = store_as<T>(scalar::convert<compute_t<T>>(start + double(i) * step));  // as cast
}

void run_arange(KernelContext& ctx, const ir::Node& node, std::span<const TensorView>,
                std::span<TensorView> out) {
  const ops::ArangeParams params = ops::ArangeParams::decode(node);
  const double start = params.start, step = params.step;
  TensorView& y = out[0];
  int64_t n = y.numel();
  if (n == 0) return;
  dispatch_all(y.dtype, [&](auto tag) {
    using T = decltype(tag);
    arange_kernel<T><<<std::min(blocks_for(n, kThreads), 65536u), kThreads, 0, stream_of(ctx)>>>(
        y.as<T>(), n, start, step);
  });
  check_launch("arange");
}

// One thread per rotated pair of one row; features past `dims` are copied by the threads
// of the pass-through range.
template <class T>
__global__ void rope_kernel(const T* __restrict__ x, T* __restrict__ y, const void* offset_ptr,
                            bool offset_i64, int64_t rows, int64_t positions, int64_t features,
                            int64_t dims, double log_base, double scale, bool interleaved) {
  pdl_wait();  // x and the offset come from earlier kernels
  pdl_release();
  int64_t half = dims / 2, rest = features - dims;
  int64_t per_row = half + rest;
  int64_t total = rows * per_row, stride = int64_t(gridDim.x) * blockDim.x;
  int64_t offset = offset_i64 ? *static_cast<const int64_t*>(offset_ptr)
                              : int64_t(*static_cast<const int32_t*>(offset_ptr));
  for (int64_t t = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; t < total; t += stride) {
    int64_t r = t / per_row, i = t - r * per_row;
    int64_t base = r * features;
    if (i >= half) {  // pass-through feature
      int64_t f = dims + (i - half);
      y[base + f] = x[base + f];
      continue;
    }
    int64_t s = r % positions;
    double position = scalar::rope_position(offset, s, scale);
    double theta = scalar::rope_angle(position, i, dims, log_base);
    double sin_t, cos_t;
    sincos(theta, &sin_t, &cos_t);
    float c = float(cos_t), sn = float(sin_t);
    int64_t first = base + (interleaved ? 2 * i : i);
    int64_t second = base + (interleaved ? 2 * i + 1 : i + half);
    float x0 = float(load(x[first])), x1 = float(load(x[second]));
    y[first] = store_as<T>(x0 * c - x1 * sn);
    y[second] = store_as<T>(x0 * sn + x1 * c);
  }
}

void run_rope(KernelContext& ctx, const ir::Node& node, std::span<const TensorView> in,
              std::span<TensorView> out) {
  const TensorView& x = in[0];
  const TensorView& offset = in[1];
  if (offset.dtype != DType::i32 && offset.dtype != DType::i64)
    fail(ErrorKind::dtype,
         std::string("rope: offset must be i32 or i64, got ") + dtype_name(offset.dtype));
  const ops::RopeParams params = ops::RopeParams::decode(node);
  double base = params.base;
  double scale = params.scale;
  int64_t features = x.shape.back();
  int64_t dims = params.rotated(features);
  bool interleaved = params.interleaved;
  int64_t positions = x.shape[size_t(x.rank() - 2)];
  if (x.numel() == 0 || positions == 0) return;
  int64_t rows = x.numel() / features;
  int64_t work = rows * (dims / 2 + features - dims);
  if (work == 0) return;
  dispatch_float(x.dtype, [&](auto tag) {
    using T = decltype(tag);
    check_cuda(launch_pdl(rope_kernel<T>, dim3(std::min(blocks_for(work, kThreads), 65536u)),
                          dim3(kThreads), 0, stream_of(ctx), x.as<const T>(), out[0].as<T>(),
                          offset.data, offset.dtype == DType::i64, rows, positions, features, dims,
                          std::log(base), scale, interleaved),
               "rope launch");
  });
  check_launch("rope");
}

}  // namespace

void register_position_kernels(Backend& b) {
  b.add_kernel("arange", Kernel{"cuda.arange", run_arange, nullptr});
  b.add_kernel("rope", Kernel{"cuda.rope", run_rope, nullptr});
}

}  // namespace loom::cuda
