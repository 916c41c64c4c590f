// assign: the copy of a value into its variable's buffer, ordered on the run's stream.
#include "backends/cuda/cuda_error.h"
#include "backends/cuda/cuda_kernels.h"
#include "backends/cuda/device/launch.cuh"

namespace loom::cuda {

void register_source_kernels(Backend& b) {
  b.add_kernel("assign", Kernel{"cuda.assign",
                                [](KernelContext& ctx, const ir::Node&,
                                   std::span<const TensorView> in, std::span<TensorView>) {
                                  if (in[0].data == in[1].data || in[1].nbytes() == 0) return;
                                  check_cuda(
                                      cudaMemcpyAsync(in[0].data, in[1].data, in[1].nbytes(),
                                                      cudaMemcpyDeviceToDevice, stream_of(ctx)),
                                      "assign");
                                },
                                nullptr});
}

}  // namespace loom::cuda
