// Every CUDA runtime and cuBLASLt call is checked: a failure becomes loom::Error(device)
// carrying the CUDA error text and what was running.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <string>
#include <type_traits>

#include "loom/error.h"

namespace loom::cuda {

[[noreturn]] inline void fail_cuda(cudaError_t status, const std::string& what) {
  // Clear the sticky-free error so that the stream stays usable after a recoverable failure.
  (void)cudaGetLastError();
  fail(ErrorKind::device, "CUDA error in " + what + ": " + cudaGetErrorName(status) + " (" +
                              cudaGetErrorString(status) + ")");
}

// The message is built only on failure: a steady-state run formats no strings (a literal
// stays a pointer; a message that needs formatting comes as a callable).
inline void check_cuda(cudaError_t status, const char* what) {
  if (status != cudaSuccess) fail_cuda(status, what);
}
inline void check_cuda(cudaError_t status, const std::string& what) {
  if (status != cudaSuccess) fail_cuda(status, what);
}
template <class MakeMessage>
requires std::is_invocable_r_v<std::string, MakeMessage>
inline void check_cuda(cudaError_t status, MakeMessage&& make_message) {
  if (status != cudaSuccess) fail_cuda(status, make_message());
}

// After a kernel launch: launch errors (bad configuration, no image for this GPU) show up here.
inline void check_launch(const char* kernel) {
  cudaError_t status = cudaGetLastError();
  if (status != cudaSuccess) fail_cuda(status, std::string("kernel ") + kernel);
}

inline void check_cublas(cublasStatus_t status, const std::string& what) {
  if (status != CUBLAS_STATUS_SUCCESS)
    fail(ErrorKind::device, "cuBLASLt error in " + what + ": " + cublasLtGetStatusName(status) +
                                " (" + cublasLtGetStatusString(status) + ")");
}

}  // namespace loom::cuda
