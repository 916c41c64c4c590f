// transpose, broadcast_to, concat and split as strided copies. reshape has no kernel: its
// output aliases its input.
#include "backends/cuda/cuda_kernels.h"
#include "backends/cuda/device/launch.cuh"
#include "backends/cuda/device/types.cuh"
#include "backends/cuda/strided_copy.h"

namespace loom::cuda {

namespace {

void run_transpose(KernelContext& ctx, const ir::Node& node, std::span<const TensorView> in,
                   std::span<TensorView> out) {
  const TensorView& x = in[0];
  TensorView& y = out[0];
  const auto& perm = node.attrs.get<std::vector<int64_t>>("perm");
  Strides x_strides = contiguous_strides(x.shape), src(size_t(y.rank()));
  for (int d = 0; d < y.rank(); ++d) {
    int64_t p = perm[size_t(d)] < 0 ? perm[size_t(d)] + x.rank() : perm[size_t(d)];
    src[size_t(d)] = x_strides[size_t(p)];
  }
  strided_copy(y.data, x.data, element_bytes(x.dtype), y.shape, contiguous_strides(y.shape), src,
               stream_of(ctx), "transpose");
}

void run_broadcast_to(KernelContext& ctx, const ir::Node&, std::span<const TensorView> in,
                      std::span<TensorView> out) {
  const TensorView& x = in[0];
  TensorView& y = out[0];
  strided_copy(y.data, x.data, element_bytes(x.dtype), y.shape, contiguous_strides(y.shape),
               broadcast_strides(x.shape, y.shape), stream_of(ctx), "broadcast_to");
}

// Each piece is an [outer, piece_block] block inside rows of the whole's [outer, block].
int concat_axis(const ir::Node& node, int rank) {
  int64_t axis = node.attrs.get<int64_t>("axis");
  return int(axis < 0 ? axis + rank : axis);
}

int64_t block_elements(const TensorView& t, int axis) {
  int64_t n = 1;
  for (int d = axis; d < t.rank(); ++d) n *= t.shape[size_t(d)];
  return n;
}

void run_concat(KernelContext& ctx, const ir::Node& node, std::span<const TensorView> in,
                std::span<TensorView> out) {
  TensorView& y = out[0];
  int axis = concat_axis(node, y.rank());
  int64_t outer = y.numel() / std::max<int64_t>(block_elements(y, axis), 1);
  int64_t y_block = block_elements(y, axis);
  size_t elem = element_bytes(y.dtype);
  int64_t column = 0;
  for (const TensorView& x : in) {
    int64_t x_block = block_elements(x, axis);
    if (x_block > 0 && outer > 0)
      strided_copy(static_cast<char*>(y.data) + column * int64_t(elem), x.data, elem,
                   {outer, x_block}, {y_block, 1}, {x_block, 1}, stream_of(ctx), "concat");
    column += x_block;
  }
}

void run_split(KernelContext& ctx, const ir::Node& node, std::span<const TensorView> in,
               std::span<TensorView> out) {
  const TensorView& x = in[0];
  int axis = concat_axis(node, x.rank());
  int64_t x_block = block_elements(x, axis);
  int64_t outer = x.numel() / std::max<int64_t>(x_block, 1);
  size_t elem = element_bytes(x.dtype);
  int64_t column = 0;
  for (TensorView& y : out) {
    int64_t y_block = block_elements(y, axis);
    if (y_block > 0 && outer > 0)
      strided_copy(y.data, static_cast<const char*>(x.data) + column * int64_t(elem), elem,
                   {outer, y_block}, {y_block, 1}, {x_block, 1}, stream_of(ctx), "split");
    column += y_block;
  }
}

}  // namespace

void register_shape_kernels(Backend& b) {
  b.add_kernel("transpose", Kernel{"cuda.transpose", run_transpose, nullptr});
  b.add_kernel("broadcast_to", Kernel{"cuda.broadcast_to", run_broadcast_to, nullptr});
  b.add_kernel("concat", Kernel{"cuda.concat", run_concat, nullptr});
  b.add_kernel("split", Kernel{"cuda.split", run_split, nullptr});
}

}  // namespace loom::cuda
