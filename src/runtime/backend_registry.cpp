// Maps a Device to its backend. The CPU backend always exists; the CUDA backend exists when
// Loom was built with CUDA and a GPU is present.
#include "backends/backend.h"
#include "loom/error.h"

#ifdef LOOM_WITH_CUDA
#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/cuda_kernels.h"
#endif

namespace loom {

Backend& cpu_backend();  // backends/cpu/cpu_backend.cpp

bool cuda_available() {
#ifdef LOOM_WITH_CUDA
  return cuda::device_present();
#else
  return false;
#endif
}

Backend& backend_for(Device device) {
  if (device.kind == DeviceKind::cpu) return cpu_backend();
#ifdef LOOM_WITH_CUDA
  if (!cuda::device_present())
    fail(ErrorKind::device, "device " + device.str() + " requested, but no CUDA GPU is present");
  return cuda::backend(device.index);
#else
  fail(ErrorKind::device,
       "device " + device.str() + " requested, but this Loom was built without CUDA");
#endif
}

namespace {

// A backend that only holds kernels: registration without a device, for introspection.
class KernelTable final : public Backend {
 public:
  explicit KernelTable(DeviceKind kind) : kind_(kind) {}
  Device device() const override { return {kind_, 0}; }
  void* allocate(size_t) override { unusable(); }
  void release(void*) override { unusable(); }
  void copy(void*, Device, const void*, Device, size_t, void*) override { unusable(); }
  void synchronize(void*) override { unusable(); }

 private:
  [[noreturn]] static void unusable() {
    fail(ErrorKind::internal, "a kernel table runs nothing; use backend_for");
  }
  DeviceKind kind_;
};

}  // namespace

const Backend& kernel_table(DeviceKind kind) {
  if (kind == DeviceKind::cpu) return cpu_backend();
#ifdef LOOM_WITH_CUDA
  static const KernelTable* cuda_table = [] {
    auto* table = new KernelTable(DeviceKind::cuda);
    cuda::register_kernels(*table);
    return table;
  }();
  return *cuda_table;
#else
  fail(ErrorKind::device, "this Loom was built without CUDA");
#endif
}

void Backend::add_kernel(const std::string& op, Kernel kernel) {
  kernels_[op].push_back(std::move(kernel));
}

const Kernel* Backend::find_kernel(const ir::Node& node, std::span<const TensorView> inputs) const {
  auto it = kernels_.find(node.op_name());
  if (it == kernels_.end()) return nullptr;
  for (const auto& k : it->second)
    if (!k.supports || k.supports(node, inputs)) return &k;
  return nullptr;
}

}  // namespace loom
