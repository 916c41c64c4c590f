// Maps a Device to its backend, and holds each backend's kernels. The CPU backend always
// exists; the CUDA backend exists when Loom was built with CUDA and a GPU is present.
#include "backends/backend.h"
#include "loom/error.h"

#ifdef LOOM_WITH_CUDA
#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/cuda_kernels.h"
#include "backends/cuda/device_name.h"
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

DeviceMemory& device_memory(Device device) { return backend_for(device); }

std::string device_identity(Device device) {
#ifdef LOOM_WITH_CUDA
  // The driver too: a package or a cached tactic timed under another driver is chosen again.
  if (device.kind == DeviceKind::cuda)
    return "cuda " + cuda::device_name(device.index) + " (driver " +
           std::to_string(cuda::driver_version()) + ")";
#endif
  return device.kind == DeviceKind::cpu ? "cpu" : device.str();
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
  std::lock_guard<std::mutex> lock(kernels_mutex_);
  kernels_[op].push_back(std::make_shared<const Kernel>(std::move(kernel)));
}

std::vector<std::shared_ptr<const Kernel>> Backend::kernels_for(
    const ir::Node& node, std::span<const TensorView> inputs) const {
  std::vector<std::shared_ptr<const Kernel>> found;
  for (auto& k : kernels(node.op_name()))
    if (!k->supports || k->supports(node, inputs)) found.push_back(std::move(k));
  return found;
}

const Kernel* Backend::find_kernel(const ir::Node& node, std::span<const TensorView> inputs) const {
  std::lock_guard<std::mutex> lock(kernels_mutex_);
  auto it = kernels_.find(node.op_name());
  if (it == kernels_.end()) return nullptr;
  for (const auto& k : it->second)
    if (!k->supports || k->supports(node, inputs)) return k.get();
  return nullptr;
}

std::vector<std::shared_ptr<const Kernel>> Backend::kernels(const std::string& op) const {
  std::lock_guard<std::mutex> lock(kernels_mutex_);
  auto it = kernels_.find(op);
  return it == kernels_.end() ? std::vector<std::shared_ptr<const Kernel>>{} : it->second;
}

void Backend::set_kernels(const std::string& op,
                          std::vector<std::shared_ptr<const Kernel>> kernels) {
  std::lock_guard<std::mutex> lock(kernels_mutex_);
  kernels_[op] = std::move(kernels);
}

}  // namespace loom
