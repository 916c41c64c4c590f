// Makes a GPU current for a scope and gives the calling thread its previous device back, so
// that Loom never leaves a caller's thread on another GPU (a caller that works on cuda:0
// while Loom runs on cuda:1 would otherwise find its next allocation or launch on cuda:1).
#pragma once

#include <cuda_runtime.h>

#include <new>
#include <string>

#include "backends/cuda/cuda_error.h"

namespace loom::cuda {

// Makes `index` current; returns the device to restore, or -1 when it already was current.
inline int enter_device(int index) {
  int previous = -1;
  if (cudaGetDevice(&previous) != cudaSuccess) {
    (void)cudaGetLastError();
    previous = -1;
  }
  if (previous == index) return -1;
  check_cuda(cudaSetDevice(index), "cudaSetDevice(" + std::to_string(index) + ")");
  return previous;
}

// Never throws: it runs from destructors. A failure (the runtime shutting down) is cleared.
inline void restore_device(int previous) noexcept {
  if (previous >= 0 && cudaSetDevice(previous) != cudaSuccess) (void)cudaGetLastError();
}

class DeviceGuard {
 public:
  explicit DeviceGuard(int index) : previous_(enter_device(index)) {}
  // For paths that must not throw (releases, destructors): on failure nothing changes.
  DeviceGuard(int index, std::nothrow_t) {
    try {
      previous_ = enter_device(index);
    } catch (...) {
      previous_ = -1;
    }
  }
  ~DeviceGuard() { restore_device(previous_); }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = -1;
};

}  // namespace loom::cuda
