// The CPU backend: host memory (64-byte aligned, for vector loads), memcpy copies (threaded
// for large ones), and the kernels of every op family.
#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "backends/backend.h"
#include "backends/cpu/cpu_kernels.h"
#include "backends/cpu/strided_copy.h"
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
    copy_host(dst, src, bytes);
  }

  // One memcpy per OpenMP thread for a large copy between buffers that do not overlap: one
  // core's copy reaches about half of what two give on the development machine (64 MB: 5.5 ms
  // with one thread, 3.0 ms with two), and feeds and outputs are copied this way. Overlapping
  // or small copies are one memmove.
  static void copy_host(void* dst, const void* src, size_t bytes) {
    if (bytes < kThreadedCopyBytes) {
      if (bytes) std::memmove(dst, src, bytes);
      return;
    }
    const auto d = reinterpret_cast<uintptr_t>(dst), s = reinterpret_cast<uintptr_t>(src);
    const bool overlap = d < s + bytes && s < d + bytes;
    const int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
    if (overlap || threads < 2) {
      std::memmove(dst, src, bytes);
      return;
    }
    const size_t chunk = (bytes / size_t(threads) + 63) / 64 * 64;
#pragma omp parallel num_threads(threads)
    {
      const size_t begin = std::min(bytes, size_t(omp_get_thread_num()) * chunk);
      const size_t end = std::min(bytes, begin + chunk);
      if (begin < end)
        std::memcpy(static_cast<char*>(dst) + begin, static_cast<const char*>(src) + begin,
                    end - begin);
    }
  }
  static constexpr size_t kThreadedCopyBytes = size_t(4) << 20;

  // The planner's gathers of views (runtime/views.h): the tiled, threaded copy of the
  // data-movement kernels rather than the element-at-a-time default.
  void copy_strided(void* dst, const void* src, size_t element_bytes, const Extents& shape,
                    const Strides& src_strides, void* stream) override {
    if (shape.size() > size_t(cpu::kMaxCopyRank))
      return Backend::copy_strided(dst, src, element_bytes, shape, src_strides, stream);
    cpu::CopyLayout layout;
    layout.rank = int(shape.size());
    cpu::contiguous_strides_into(shape, layout.dst);
    for (int d = 0; d < layout.rank; ++d) {
      layout.extent[d] = shape[size_t(d)];
      layout.src[d] = src_strides[size_t(d)];
    }
    cpu::strided_copy(dst, src, layout, element_bytes);
  }

  void synchronize(void*) override {}
};

}  // namespace

Backend& cpu_backend() {
  static CpuBackend backend;
  return backend;
}

}  // namespace loom
