// The CPU backend: host memory (64-byte aligned, for vector loads), memcpy copies, and the
// kernels of every op family.
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
    cpu::register_source_kernels(*this);
    cpu::register_elementwise_kernels(*this);
    cpu::register_matmul_kernels(*this);
    cpu::register_reduce_kernels(*this);
    cpu::register_norm_kernels(*this);
    cpu::register_shape_kernels(*this);
    cpu::register_slice_kernels(*this);
    cpu::register_position_kernels(*this);
    cpu::register_attention_kernels(*this);
  }

  Device device() const override { return Device::cpu(); }

  void* allocate(size_t bytes) override {
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
