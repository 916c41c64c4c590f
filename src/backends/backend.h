// The backend interface every device implements: memory, copies, streams, and a kernel
// per op kind. The runtime calls it; ops never see which device they run on.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "ir/node.h"
#include "loom/device.h"
#include "loom/executable.h"

namespace loom {

// Concrete view of one value for a kernel. Kernels write contiguous outputs; inputs are
// contiguous too unless the kernel says it takes strided inputs.
struct TensorView {
  void* data = nullptr;
  DType dtype = DType::f32;
  Extents shape;
  Strides strides;

  int rank() const { return int(shape.size()); }
  int64_t numel() const { return loom::numel(shape); }
  size_t nbytes() const { return storage_bytes(dtype, numel()); }
  template <class T>
  T* as() const {
    return static_cast<T*>(data);
  }
};

class Backend;

struct KernelContext {
  Backend& backend;
  void* stream = nullptr;  // cudaStream_t on CUDA
  // Per-node state that a kernel may build on its first call and reuse (a GEMM plan).
  std::shared_ptr<void>* state = nullptr;
};

using KernelFn = std::function<void(KernelContext&, const ir::Node&, std::span<const TensorView>,
                                    std::span<TensorView>)>;
using KernelSupports = std::function<bool(const ir::Node&, std::span<const TensorView>)>;

struct Kernel {
  std::string name;  // shown in the dump, e.g. "cpu.matmul.openblas"
  KernelFn run;
  KernelSupports supports;  // null: supports every node of its op
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual Device device() const = 0;
  virtual void* allocate(size_t bytes) = 0;
  virtual void release(void* data) = 0;
  // Copies between this device and the host or within this device, ordered on `stream`.
  virtual void copy(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes,
                    void* stream) = 0;
  virtual void* create_stream() { return nullptr; }
  virtual void destroy_stream(void*) {}
  virtual void synchronize(void* stream) = 0;
  // Makes this backend's device current on the calling thread before kernels launch (a GPU
  // backend when several GPUs are in use); a no-op elsewhere.
  virtual void activate() const {}

  // Graph capture (CUDA graphs); backends without it keep the defaults.
  virtual bool supports_graphs() const { return false; }
  virtual void begin_capture(void*) {}
  virtual std::shared_ptr<void> end_capture(void*) { return nullptr; }
  virtual void replay(const std::shared_ptr<void>&, void*) {}

  void add_kernel(const std::string& op, Kernel kernel);
  // The first registered kernel that supports the node; null when none does.
  const Kernel* find_kernel(const ir::Node& node, std::span<const TensorView> inputs) const;
  // Whether any kernel is registered for the op.
  bool has_kernel(const std::string& op) const { return kernels_.count(op) != 0; }

 private:
  std::map<std::string, std::vector<Kernel>> kernels_;
};

// The backend for a device; throws loom::Error(device) when it is not available.
Backend& backend_for(Device device);

// The kernels a device kind's backend registers, made without the device (no GPU needed),
// so that tests can check every op has a kernel on every backend that is built. Throws
// loom::Error(device) for a kind this Loom was built without.
const Backend& kernel_table(DeviceKind kind);

}  // namespace loom
