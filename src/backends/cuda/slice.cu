// slice, dynamic_slice, slice_update (and its in-place form) and gather. Run-time starts and
// indices are read on the device: a captured CUDA graph replays correctly as they change.
#include <algorithm>

#include "backends/cuda/cuda_error.h"
#include "backends/cuda/cuda_kernels.h"
#include "backends/cuda/device/launch.cuh"
#include "backends/cuda/device/types.cuh"
#include "backends/cuda/strided_copy.h"
#include "ops/slice_params.h"

namespace loom::cuda {

namespace {

int normalized_axis(int64_t axis, int rank) { return int(axis < 0 ? axis + rank : axis); }

void check_index_dtype(const TensorView& t, const char* op) {
  if (t.dtype != DType::i32 && t.dtype != DType::i64)
    fail(ErrorKind::dtype,
         std::string(op) + ": indices must be i32 or i64, got " + dtype_name(t.dtype));
}

void run_slice(KernelContext& ctx, const ir::Node& node, std::span<const TensorView> in,
               std::span<TensorView> out) {
  const TensorView& x = in[0];
  TensorView& y = out[0];
  int rank = x.rank();
  const ops::SliceParams params = ops::SliceParams::decode(node);
  const auto& axes = params.axes;
  const auto& starts = params.starts;
  const auto& steps = params.steps;
  Strides x_strides = contiguous_strides(x.shape), src = x_strides;
  int64_t offset = 0;
  for (size_t i = 0; i < starts.size(); ++i) {
    int d = axes.empty() ? int(i) : normalized_axis(axes[i], rank);
    int64_t dim = x.shape[size_t(d)];
    int64_t step = steps.empty() ? 1 : steps[i];
    // Python's start: negative counts from the end, then clamped into [0, dim].
    int64_t start = std::clamp(starts[i] < 0 ? starts[i] + dim : starts[i], int64_t(0), dim);
    offset += start * x_strides[size_t(d)];
    src[size_t(d)] = x_strides[size_t(d)] * step;
  }
  size_t elem = element_bytes(x.dtype);
  if (y.numel() == 0) return;
  strided_copy(y.data, static_cast<const char*>(x.data) + offset * int64_t(elem), elem, y.shape,
               contiguous_strides(y.shape), src, stream_of(ctx), "slice");
}

void run_dynamic_slice(KernelContext& ctx, const ir::Node& node, std::span<const TensorView> in,
                       std::span<TensorView> out) {
  const TensorView& x = in[0];
  const TensorView& starts = in[1];
  TensorView& y = out[0];
  check_index_dtype(starts, "dynamic_slice");
  const auto& axes = ops::DynamicSliceParams::decode(node).axes;
  Strides x_strides = contiguous_strides(x.shape);
  DeviceStarts s;
  s.starts = starts.data;
  s.starts_i64 = starts.dtype == DType::i64;
  for (size_t i = 0; i < axes.size(); ++i) {
    int d = normalized_axis(axes[i], x.rank());
    s.add(int(i), x.shape[size_t(d)] - y.shape[size_t(d)], x_strides[size_t(d)]);
  }
  strided_copy(y.data, x.data, element_bytes(x.dtype), y.shape, contiguous_strides(y.shape),
               x_strides, s, false, stream_of(ctx), "dynamic_slice");
}

// Writes `update` into the window of y at the (clamped) run-time starts.
void write_window(const TensorView& y, const TensorView& update, const TensorView& starts,
                  cudaStream_t stream, const char* op) {
  check_index_dtype(starts, op);
  Strides y_strides = contiguous_strides(y.shape);
  DeviceStarts s;
  s.starts = starts.data;
  s.starts_i64 = starts.dtype == DType::i64;
  for (int d = 0; d < y.rank(); ++d)
    if (y.shape[size_t(d)] != update.shape[size_t(d)])
      s.add(d, y.shape[size_t(d)] - update.shape[size_t(d)], y_strides[size_t(d)]);
  strided_copy(y.data, update.data, element_bytes(y.dtype), update.shape, y_strides,
               contiguous_strides(update.shape), s, true, stream, op);
}

void run_slice_update(KernelContext& ctx, const ir::Node&, std::span<const TensorView> in,
                      std::span<TensorView> out) {
  const TensorView& x = in[0];
  if (out[0].data != x.data && x.nbytes() > 0)
    check_cuda(
        cudaMemcpyAsync(out[0].data, x.data, x.nbytes(), cudaMemcpyDeviceToDevice, stream_of(ctx)),
        "slice_update (copy of x)");
  write_window(out[0], in[1], in[2], stream_of(ctx), "slice_update");
}

// The runtime gives the output the storage of x (the variable), so only the window moves.
void run_slice_update_inplace(KernelContext& ctx, const ir::Node&, std::span<const TensorView> in,
                              std::span<TensorView> out) {
  write_window(out[0], in[1], in[2], stream_of(ctx), "slice_update_inplace");
}

// Rows of `row` units: out row r is table row (o, index[r % count]) or zeros when the index
// is out of range.
template <class T>
__global__ void gather_kernel(const T* __restrict__ table, const void* __restrict__ indices,
                              bool indices_i64, T* __restrict__ out, int64_t outer, int64_t count,
                              int64_t rows, int64_t row) {
  int64_t total = outer * count * row, stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += stride) {
    int64_t r = i / row, j = i - r * row;
    int64_t o = r / count, c = r - o * count;
    int64_t index = indices_i64 ? static_cast<const int64_t*>(indices)[c]
                                : int64_t(static_cast<const int32_t*>(indices)[c]);
    out[i] = index < 0 || index >= rows ? T{} : table[(o * rows + index) * row + j];
  }
}

void run_gather(KernelContext& ctx, const ir::Node& node, std::span<const TensorView> in,
                std::span<TensorView> out) {
  const TensorView& table = in[0];
  const TensorView& indices = in[1];
  TensorView& y = out[0];
  check_index_dtype(indices, "gather");
  int axis = normalized_axis(ops::GatherParams::decode(node).axis, table.rank());
  int64_t outer = 1, inner = 1;
  for (int d = 0; d < axis; ++d) outer *= table.shape[size_t(d)];
  for (int d = axis + 1; d < table.rank(); ++d) inner *= table.shape[size_t(d)];
  int64_t rows = table.shape[size_t(axis)];
  int64_t count = indices.numel();
  size_t elem = element_bytes(table.dtype);
  size_t row_bytes = size_t(inner) * elem;
  if (row_bytes == 0 || outer * count == 0) return;
  // Move whole rows in the widest unit their size and alignment allow.
  size_t unit = elem;
  for (size_t w = 16; w > elem; w /= 2)
    if (row_bytes % w == 0 && reinterpret_cast<uintptr_t>(table.data) % w == 0 &&
        reinterpret_cast<uintptr_t>(y.data) % w == 0) {
      unit = w;
      break;
    }
  int64_t row = int64_t(row_bytes / unit);
  dispatch_bytes(unit, [&](auto tag) {
    using T = decltype(tag);
    gather_kernel<T><<<std::min(blocks_for(outer * count * row, kThreads), 65536u), kThreads, 0,
                       stream_of(ctx)>>>(table.as<const T>(), indices.data,
                                         indices.dtype == DType::i64, y.as<T>(), outer, count, rows,
                                         row);
  });
  check_launch("gather");
}

}  // namespace

void register_slice_kernels(Backend& b) {
  b.add_kernel("slice", Kernel{"cuda.slice", run_slice, nullptr});
  b.add_kernel("dynamic_slice", Kernel{"cuda.dynamic_slice", run_dynamic_slice, nullptr});
  b.add_kernel("slice_update", Kernel{"cuda.slice_update", run_slice_update, nullptr});
  b.add_kernel("slice_update_inplace",
               Kernel{"cuda.slice_update_inplace", run_slice_update_inplace, nullptr});
  b.add_kernel("gather", Kernel{"cuda.gather", run_gather, nullptr});
}

}  // namespace loom::cuda
