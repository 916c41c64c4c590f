// transpose, broadcast_to, concat and split as strided copies (a swap of the last two dims
// through a shared-memory tile). reshape has no kernel: its
// output aliases its input.
#include "backends/cuda/cuda_error.h"
#include "backends/cuda/cuda_kernels.h"
#include "backends/cuda/device/launch.cuh"
#include "backends/cuda/device/types.cuh"
#include "backends/cuda/strided_copy.h"

namespace loom::cuda {

namespace {

// [batch, rows, cols] -> [batch, cols, rows] through a 32 x 32 tile in shared memory, so that
// both the reads and the writes are coalesced (the generic strided copy reads one element per
// row; the STFT's swap of a [.., frames, bins] c64 spectrum is the case that matters).
template <class T>
__global__ void swap_last_two_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t rows,
                                     int64_t cols) {
  __shared__ T tile[32][33];
  const int64_t b = blockIdx.z;
  const int64_t r0 = int64_t(blockIdx.y) * 32, c0 = int64_t(blockIdx.x) * 32;
  const T* src = x + b * rows * cols;
  T* dst = y + b * rows * cols;
  for (int i = threadIdx.y; i < 32; i += blockDim.y) {
    const int64_t r = r0 + i, c = c0 + threadIdx.x;
    if (r < rows && c < cols) tile[i][threadIdx.x] = src[r * cols + c];
  }
  __syncthreads();
  for (int i = threadIdx.y; i < 32; i += blockDim.y) {
    const int64_t c = c0 + i, r = r0 + threadIdx.x;
    if (r < rows && c < cols) dst[c * rows + r] = tile[threadIdx.x][i];
  }
}

// Whether perm swaps the last two dims and keeps the others in place.
bool swaps_last_two(const std::vector<int64_t>& perm, int rank) {
  if (rank < 2) return false;
  for (int d = 0; d < rank; ++d) {
    const int64_t p = perm[size_t(d)] < 0 ? perm[size_t(d)] + rank : perm[size_t(d)];
    const int64_t want = d == rank - 2 ? rank - 1 : d == rank - 1 ? rank - 2 : d;
    if (p != want) return false;
  }
  return true;
}

void run_transpose(KernelContext& ctx, const ir::Node& node, std::span<const TensorView> in,
                   std::span<TensorView> out) {
  const TensorView& x = in[0];
  TensorView& y = out[0];
  const auto& perm = node.attrs.get<std::vector<int64_t>>("perm");
  const size_t bytes = element_bytes(x.dtype);
  if (y.numel() > 0 && swaps_last_two(perm, x.rank()) && (bytes == 4 || bytes == 8)) {
    const int64_t rows = x.shape[size_t(x.rank() - 2)], cols = x.shape.back();
    const int64_t batch = x.numel() / (rows * cols);
    if (batch <= 65535 && (rows + 31) / 32 <= 65535) {
      const dim3 grid(unsigned((cols + 31) / 32), unsigned((rows + 31) / 32), unsigned(batch));
      const dim3 block(32, 8);
      if (bytes == 8)
        swap_last_two_kernel<uint64_t><<<grid, block, 0, stream_of(ctx)>>>(
            x.as<const uint64_t>(), y.as<uint64_t>(), rows, cols);
      else
        swap_last_two_kernel<uint32_t><<<grid, block, 0, stream_of(ctx)>>>(
            x.as<const uint32_t>(), y.as<uint32_t>(), rows, cols);
      check_launch("transpose (last two dims)");
      return;
    }
  }
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
