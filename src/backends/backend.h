// The backend interface every device implements: memory, copies, streams, and a kernel
// per op kind. The runtime calls it; ops never see which device they run on.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <utility>
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

// One way a kernel can run a node (a cuBLASLt algorithm, a tile shape) and the scratch memory
// it needs while it runs. The planner places that workspace in the plan's arena, so a kernel
// never allocates and a CUDA graph capture never sees an allocation.
struct Tactic {
  std::string name;                  // shown after '#' in the dump; empty for a kernel's only way
  size_t workspace_bytes = 0;        // scratch bytes the kernel may use during one call
  std::shared_ptr<const void> data;  // what the kernel needs to run it (an algorithm)
};

struct KernelContext {
  Backend& backend;
  void* stream = nullptr;  // cudaStream_t on CUDA
  // Per-node state that a kernel may build on its first call and reuse (a GEMM plan).
  std::shared_ptr<void>* state = nullptr;
  // The tactic chosen for the node, and its workspace in the arena (workspace_bytes bytes,
  // 256-byte aligned). tactic is null when a node runs outside a plan (constant folding).
  const Tactic* tactic = nullptr;
  void* workspace = nullptr;
  size_t workspace_bytes = 0;
};

using KernelFn = std::function<void(KernelContext&, const ir::Node&, std::span<const TensorView>,
                                    std::span<TensorView>)>;
using KernelSupports = std::function<bool(const ir::Node&, std::span<const TensorView>)>;
// The tactics a kernel offers for a node at these views. The views carry their final dtype,
// extents and alignment, but their data must not be read: the arena may not exist yet.
using KernelTactics = std::function<std::vector<Tactic>(
    const ir::Node&, std::span<const TensorView> in, std::span<const TensorView> out)>;

struct Kernel {
  Kernel() = default;
  Kernel(std::string name, KernelFn run, KernelSupports supports = nullptr,
         KernelTactics tactics = nullptr, bool strided_inputs = false)
      : name(std::move(name)),
        run(std::move(run)),
        supports(std::move(supports)),
        tactics(std::move(tactics)),
        strided_inputs(strided_inputs) {}

  std::string name;  // shown in the dump, e.g. "cpu.matmul.openblas"
  KernelFn run;
  // Null: supports every node of its op. When a node's shape is symbolic at compile time,
  // it is asked with every symbolic extent set to 1, so it should decide by dtype and rank.
  KernelSupports supports;
  KernelTactics tactics;  // null: one unnamed tactic without workspace
  // Reads inputs with any strides. The planner gives every kernel contiguous views today;
  // this says which kernels could take a strided view without a gather first.
  bool strided_inputs = false;
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
  // Every kernel registered for the node's op that supports it, in registration order.
  std::vector<std::shared_ptr<const Kernel>> kernels_for(const ir::Node& node,
                                                         std::span<const TensorView> inputs) const;
  // The first of kernels_for(); null when none supports the node.
  const Kernel* find_kernel(const ir::Node& node, std::span<const TensorView> inputs) const;

  // Test hooks: the kernels registered for an op, and replacing them (plans made before keep
  // the kernels they chose alive).
  std::vector<std::shared_ptr<const Kernel>> kernels(const std::string& op) const;
  void set_kernels(const std::string& op, std::vector<std::shared_ptr<const Kernel>> kernels);

 private:
  mutable std::mutex kernels_mutex_;
  std::map<std::string, std::vector<std::shared_ptr<const Kernel>>> kernels_;
};

// The backend for a device; throws loom::Error(device) when it is not available.
Backend& backend_for(Device device);
// What identifies the device's kind in a tactic cache: "cpu", or the GPU's name
// ("cuda NVIDIA H200").
std::string device_identity(Device device);

}  // namespace loom
