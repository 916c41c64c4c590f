// The CPU backend: host memory (64-byte aligned, for vector loads), memcpy copies, and the
// kernels of every op family.
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "backends/backend.h"
#include "backends/cpu/cpu_kernels.h"
#include "loom/error.h"

namespace loom {

namespace {

class CpuBackend final : public Backend {
 public:
  CpuBackend() {
#define LOOM_OP_FAMILY(name) cpu::register_##name##_kernels(*this);
#include "ops/families.def"
#undef LOOM_OP_FAMILY
  }

  Device device() const override { return Device::cpu(); }

  void* allocate(size_t bytes) override {
    // More than the machine's memory cannot be served; asking the allocator anyway aborts
    // under the sanitizers (and overflows the rounding near SIZE_MAX). A hostile package or an
    // absurd symbol binding gets an error instead.
    static const size_t physical = size_t(sysconf(_SC_PHYS_PAGES)) * size_t(sysconf(_SC_PAGESIZE));
    if (bytes > physical)
      fail(ErrorKind::device, "out of host memory: " + std::to_string(bytes) +
                                  " bytes asked for, the machine has " + std::to_string(physical));
    size_t rounded = (bytes + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, rounded == 0 ? 64 : rounded);
    if (!p)
      fail(ErrorKind::device, "out of host memory allocating " + std::to_string(bytes) + " bytes");
    return p;
  }

  void release(void* data) override { std::free(data); }

  void copy(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes,
            void*) override {
    if (dst_device != Device::cpu() || src_device != Device::cpu())
      fail(ErrorKind::internal, "CPU backend asked to copy to or from " +
                                    (dst_device != Device::cpu() ? dst_device : src_device).str());
    if (bytes) std::memmove(dst, src, bytes);
  }

  void synchronize(void*) override {}
};

}  // namespace

Backend& cpu_backend() {
  static CpuBackend backend;
  return backend;
}

}  // namespace loom
