// CPU kernels of the shape ops: transpose, broadcast_to, concat, split. reshape has none:
// its output aliases its input.
#include <cstring>

#include "backends/cpu/cpu_kernels.h"
#include "backends/cpu/strided_copy.h"

namespace loom::cpu {

namespace {

void run_transpose(KernelContext&, const ir::Node& node, std::span<const TensorView> in,
                   std::span<TensorView> out) {
  const TensorView& x = in[0];
  int rank = x.rank();
  check_copy_rank(rank, "transpose");
  const auto& perm = node.attrs.get<std::vector<int64_t>>("perm");
  int64_t x_strides[kMaxCopyRank];
  contiguous_strides_into(x.shape, x_strides);
  CopyLayout layout;
  layout.rank = rank;
  contiguous_strides_into(out[0].shape, layout.dst);
  for (int d = 0; d < rank; ++d) {
    int64_t p = perm[size_t(d)] < 0 ? perm[size_t(d)] + rank : perm[size_t(d)];
    layout.extent[d] = out[0].shape[size_t(d)];
    layout.src[d] = x_strides[p];
  }
  strided_copy(out[0].data, x.data, layout, element_bytes(x.dtype, "transpose"));
}

void run_broadcast_to(KernelContext&, const ir::Node&, std::span<const TensorView> in,
                      std::span<TensorView> out) {
  const TensorView& x = in[0];
  TensorView& y = out[0];
  check_copy_rank(y.rank(), "broadcast_to");
  int64_t x_strides[kMaxCopyRank];
  contiguous_strides_into(x.shape, x_strides);
  CopyLayout layout;
  layout.rank = y.rank();
  contiguous_strides_into(y.shape, layout.dst);
  int offset = y.rank() - x.rank();  // x is right-aligned
  for (int d = 0; d < y.rank(); ++d) {
    layout.extent[d] = y.shape[size_t(d)];
    bool repeated = d < offset || x.shape[size_t(d - offset)] != y.shape[size_t(d)];
    layout.src[d] = repeated ? 0 : x_strides[d - offset];
  }
  strided_copy(y.data, x.data, layout, element_bytes(x.dtype, "broadcast_to"));
}

// Extents before `axis` multiply to `outer`; the axis and after, per tensor, form one
// contiguous block of each outer row.
int64_t outer_count(const Extents& shape, int axis) {
  int64_t n = 1;
  for (int d = 0; d < axis; ++d) n *= shape[size_t(d)];
  return n;
}

int64_t block_bytes(const TensorView& t, int axis) {
  int64_t n = 1;
  for (int d = axis; d < t.rank(); ++d) n *= t.shape[size_t(d)];
  return n * int64_t(element_bytes(t.dtype, "concat/split"));
}

int node_axis(const ir::Node& node, int rank) {
  int64_t axis = node.attrs.get<int64_t>("axis");
  return int(axis < 0 ? axis + rank : axis);
}

void run_concat(KernelContext&, const ir::Node& node, std::span<const TensorView> in,
                std::span<TensorView> out) {
  TensorView& y = out[0];
  int axis = node_axis(node, y.rank());
  int64_t outer = outer_count(y.shape, axis);
  int64_t y_block = block_bytes(y, axis);
  auto* dst = static_cast<char*>(y.data);
  int64_t column = 0;  // byte offset of input k inside each outer row of y
  for (const TensorView& x : in) {
    int64_t x_block = block_bytes(x, axis);
    const auto* src = static_cast<const char*>(x.data);
    if (x_block > 0) {
      parallel_for(outer, std::max<int64_t>(1, kParallelGrain / x_block), [&](int64_t o) {
        std::memcpy(dst + o * y_block + column, src + o * x_block, size_t(x_block));
      });
    }
    column += x_block;
  }
}

void run_split(KernelContext&, const ir::Node& node, std::span<const TensorView> in,
               std::span<TensorView> out) {
  const TensorView& x = in[0];
  int axis = node_axis(node, x.rank());
  int64_t outer = outer_count(x.shape, axis);
  int64_t x_block = block_bytes(x, axis);
  const auto* src = static_cast<const char*>(x.data);
  int64_t column = 0;
  for (TensorView& y : out) {
    int64_t y_block = block_bytes(y, axis);
    auto* dst = static_cast<char*>(y.data);
    if (y_block > 0) {
      parallel_for(outer, std::max<int64_t>(1, kParallelGrain / y_block), [&](int64_t o) {
        std::memcpy(dst + o * y_block, src + o * x_block + column, size_t(y_block));
      });
    }
    column += y_block;
  }
}

}  // namespace

void register_shape_kernels(Backend& b) {
  b.add_kernel("transpose", Kernel{"cpu.transpose", run_transpose, nullptr});
  b.add_kernel("broadcast_to", Kernel{"cpu.broadcast_to", run_broadcast_to, nullptr});
  b.add_kernel("concat", Kernel{"cpu.concat", run_concat, nullptr});
  b.add_kernel("split", Kernel{"cpu.split", run_split, nullptr});
}

}  // namespace loom::cpu
