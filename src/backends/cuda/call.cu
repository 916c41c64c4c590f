// The call op on CUDA: the callee's steps are launched on the caller's stream, so they are
// ordered with the caller's kernels and captured in its CUDA graph (src/runtime/call.cpp).
#include "backends/cuda/cuda_kernels.h"

namespace loom {
Kernel call_kernel(const std::string& name);
}

namespace loom::cuda {

void register_call_kernels(Backend& b) { b.add_kernel("call", call_kernel("cuda.call")); }

}  // namespace loom::cuda
