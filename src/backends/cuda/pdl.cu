#include <array>
#include <atomic>

#include "backends/cuda/device/pdl.cuh"

namespace loom::cuda {

bool pdl_enabled() {
  static const bool allowed = [] {
    const char* env = std::getenv("LOOM_PDL");
    return !(env && std::strcmp(env, "0") == 0);
  }();
  if (!allowed) return false;
  // Per device: 0 unknown, 1 no, 2 yes. Devices past the table ask every time.
  static std::array<std::atomic<int>, 64> known{};
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess) {
    (void)cudaGetLastError();
    return false;
  }
  const bool cached = device >= 0 && device < int(known.size());
  if (cached && known[size_t(device)].load(std::memory_order_relaxed) != 0)
    return known[size_t(device)].load(std::memory_order_relaxed) == 2;
  int major = 0;
  if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess) {
    (void)cudaGetLastError();
    return false;
  }
  if (cached) known[size_t(device)].store(major >= 9 ? 2 : 1, std::memory_order_relaxed);
  return major >= 9;
}

}  // namespace loom::cuda
