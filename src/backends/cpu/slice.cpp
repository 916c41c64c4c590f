// CPU kernels of the slice ops: slice, dynamic_slice, slice_update (and its in-place
// form), gather.
#include <algorithm>
#include <cstring>

#include "backends/cpu/cpu_kernels.h"
#include "backends/cpu/strided_copy.h"
#include "ops/slice_params.h"

namespace loom::cpu {

namespace {

int normalized_axis(int64_t axis, int rank) { return int(axis < 0 ? axis + rank : axis); }

void run_slice(KernelContext&, const ir::Node& node, std::span<const TensorView> in,
               std::span<TensorView> out) {
  const TensorView& x = in[0];
  TensorView& y = out[0];
  int rank = x.rank();
  check_copy_rank(rank, "slice");
  const auto [axes, starts, stops, steps] = ops::SliceParams::decode(node);
  CopyLayout layout;
  layout.rank = rank;
  contiguous_strides_into(y.shape, layout.dst);
  int64_t x_strides[kMaxCopyRank];
  contiguous_strides_into(x.shape, x_strides);
  int64_t offset = 0;
  for (int d = 0; d < rank; ++d) {
    layout.extent[d] = y.shape[size_t(d)];
    layout.src[d] = x_strides[d];
  }
  for (size_t i = 0; i < starts.size(); ++i) {
    int d = axes.empty() ? int(i) : normalized_axis(axes[i], rank);
    int64_t dim = x.shape[size_t(d)];
    int64_t step = steps.empty() ? 1 : steps[i];
    // Python's start: negative counts from the end, then clamped into [0, dim].
    int64_t start = std::clamp(starts[i] < 0 ? starts[i] + dim : starts[i], int64_t(0), dim);
    offset += start * x_strides[d];
    layout.src[d] = x_strides[d] * step;
  }
  size_t bytes = element_bytes(x.dtype, "slice");
  strided_copy(y.data, static_cast<const char*>(x.data) + offset * int64_t(bytes), layout, bytes);
}

// Run-time start of a window of `size` along a dim of `dim`, clamped to stay inside.
int64_t window_start(const TensorView& starts, int64_t i, int64_t dim, int64_t size) {
  return std::clamp(load_index(starts.data, starts.dtype, i), int64_t(0), dim - size);
}

void run_dynamic_slice(KernelContext&, const ir::Node& node, std::span<const TensorView> in,
                       std::span<TensorView> out) {
  const TensorView& x = in[0];
  const TensorView& starts = in[1];
  TensorView& y = out[0];
  int rank = x.rank();
  check_copy_rank(rank, "dynamic_slice");
  const auto& axes = ops::DynamicSliceParams::decode(node).axes;
  CopyLayout layout;
  layout.rank = rank;
  contiguous_strides_into(y.shape, layout.dst);
  contiguous_strides_into(x.shape, layout.src);
  for (int d = 0; d < rank; ++d) layout.extent[d] = y.shape[size_t(d)];
  int64_t offset = 0;
  for (size_t i = 0; i < axes.size(); ++i) {
    int d = normalized_axis(axes[i], rank);
    offset +=
        window_start(starts, int64_t(i), x.shape[size_t(d)], y.shape[size_t(d)]) * layout.src[d];
  }
  size_t bytes = element_bytes(x.dtype, "dynamic_slice");
  strided_copy(y.data, static_cast<const char*>(x.data) + offset * int64_t(bytes), layout, bytes);
}

}  // namespace

void write_window(TensorView& y, const TensorView& update, const TensorView& starts) {
  int rank = y.rank();
  check_copy_rank(rank, "slice_update");
  CopyLayout layout;
  layout.rank = rank;
  contiguous_strides_into(y.shape, layout.dst);
  contiguous_strides_into(update.shape, layout.src);
  int64_t offset = 0;
  for (int d = 0; d < rank; ++d) {
    layout.extent[d] = update.shape[size_t(d)];
    offset += window_start(starts, d, y.shape[size_t(d)], update.shape[size_t(d)]) * layout.dst[d];
  }
  size_t bytes = element_bytes(y.dtype, "slice_update");
  strided_copy(static_cast<char*>(y.data) + offset * int64_t(bytes), update.data, layout, bytes);
}

namespace {

void run_slice_update(KernelContext&, const ir::Node&, std::span<const TensorView> in,
                      std::span<TensorView> out) {
  const TensorView& x = in[0];
  if (out[0].data != x.data) std::memcpy(out[0].data, x.data, x.nbytes());
  write_window(out[0], in[1], in[2]);
}

// The runtime gives the output the storage of x (the variable), so only the window moves.
void run_slice_update_inplace(KernelContext&, const ir::Node&, std::span<const TensorView> in,
                              std::span<TensorView> out) {
  write_window(out[0], in[1], in[2]);
}

void run_gather(KernelContext&, const ir::Node& node, std::span<const TensorView> in,
                std::span<TensorView> out) {
  const TensorView& table = in[0];
  const TensorView& indices = in[1];
  TensorView& y = out[0];
  int axis = normalized_axis(ops::GatherParams::decode(node).axis, table.rank());
  int64_t outer = 1, inner = 1;
  for (int d = 0; d < axis; ++d) outer *= table.shape[size_t(d)];
  for (int d = axis + 1; d < table.rank(); ++d) inner *= table.shape[size_t(d)];
  int64_t rows = table.shape[size_t(axis)];
  int64_t count = indices.numel();
  int64_t row_bytes = inner * int64_t(element_bytes(table.dtype, "gather"));
  const auto* src = static_cast<const char*>(table.data);
  auto* dst = static_cast<char*>(y.data);
  if (row_bytes == 0) return;
  parallel_for(outer * count, std::max<int64_t>(1, kParallelGrain / row_bytes), [&](int64_t r) {
    int64_t o = r / count;
    int64_t index = load_index(indices.data, indices.dtype, r % count);
    char* row = dst + r * row_bytes;
    // Out-of-range indices (negative ones included) read as zeros, never outside the table.
    if (index < 0 || index >= rows) {
      std::memset(row, 0, size_t(row_bytes));
    } else {
      std::memcpy(row, src + (o * rows + index) * row_bytes, size_t(row_bytes));
    }
  });
}

}  // namespace

void register_slice_kernels(Backend& b) {
  b.add_kernel("slice", Kernel{"cpu.slice", run_slice, nullptr});
  b.add_kernel("dynamic_slice", Kernel{"cpu.dynamic_slice", run_dynamic_slice, nullptr});
  b.add_kernel("slice_update", Kernel{"cpu.slice_update", run_slice_update, nullptr});
  b.add_kernel("slice_update_inplace",
               Kernel{"cpu.slice_update_inplace", run_slice_update_inplace, nullptr});
  b.add_kernel("gather", Kernel{"cpu.gather", run_gather, nullptr});
}

}  // namespace loom::cpu
