#include <cuda_runtime.h>

#include "backends/cuda/cuda_error.h"
#include "backends/cuda/device_name.h"

namespace loom::cuda {

std::string device_name(int index) {
  cudaDeviceProp prop{};
  check_cuda(cudaGetDeviceProperties(&prop, index), "cudaGetDeviceProperties");
  return prop.name;
}

int driver_version() {
  int version = 0;
  check_cuda(cudaDriverGetVersion(&version), "cudaDriverGetVersion");
  return version;
}

}  // namespace loom::cuda
