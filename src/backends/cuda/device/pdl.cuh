// Programmatic dependent launch (Hopper and later). A decode step is hundreds of kernels of
// a few microseconds, each mostly launch, ramp-up and a first memory round trip. Launched
// with the programmatic-serialization attribute, a kernel may start while the previous one
// in the stream still runs: it does the work that depends on nothing in flight (loading
// weights, which no kernel of a run writes) and then waits in `pdl_wait` until the previous
// kernel has finished and its writes are visible. `pdl_release` lets the next kernel start
// its own independent part; called after a kernel's wait, so at most one kernel runs ahead.
//
// Rules, because the attribute drops the stream's ordering guarantee for that launch:
//  - only kernels that call pdl_wait before their first read of a kernel-produced value and
//    before their first global write are launched with `launch_pdl`;
//  - everything else keeps the plain launch, which waits for the whole previous kernel.
// The wait is transitive: the kernel before has itself waited for its predecessor.
// LOOM_PDL=0 turns the attribute off (for measuring what it gains, or ruling it out).
#pragma once

#include <cuda_runtime.h>

#include <cstdlib>
#include <cstring>
#include <utility>

namespace loom::cuda {

__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

__device__ __forceinline__ void pdl_release() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// True when the current device runs programmatic dependent launches (compute capability 9.0
// or later) and LOOM_PDL is not "0". Read per device, once.
bool pdl_enabled();

// Launches `kernel` on `stream` with programmatic stream serialization when pdl_enabled(),
// else as a plain launch. The kernel must follow the rules above.
template <class... Params, class... Args>
cudaError_t launch_pdl(void (*kernel)(Params...), dim3 grid, dim3 block, size_t shared_bytes,
                       cudaStream_t stream, Args&&... args) {
  cudaLaunchConfig_t config{};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = shared_bytes;
  config.stream = stream;
  cudaLaunchAttribute attribute[1];
  if (pdl_enabled()) {
    attribute[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attribute[0].val.programmaticStreamSerializationAllowed = 1;
    config.attrs = attribute;
    config.numAttrs = 1;
  }
  return cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...);
}

}  // namespace loom::cuda
