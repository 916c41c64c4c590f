// The backend interface every device implements: memory, copies, streams, and a kernel
// per op kind. The runtime calls it; ops never see which device they run on.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "core/device_memory.h"
#include "ir/node.h"
#include "loom/device.h"
#include "loom/executable.h"

namespace loom {

// Concrete view of one value for a kernel. Kernels write contiguous outputs; inputs are
// contiguous too unless the kernel says it takes strided inputs (Kernel::strided_inputs).
// Strides are in elements; a contiguous view carries contiguous_strides(shape).
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

namespace runtime {
struct CallTable;
}

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
  // CompileOptions::kernel_cache of the executable (kernels that compile code at run time);
  // null outside a plan.
  const std::string* kernel_cache = nullptr;
  // The executable's bound callables (the call kernel, src/runtime/call.cpp); null outside
  // a plan.
  const runtime::CallTable* callables = nullptr;
  // Bit i set: no step of this run writes input i (a constant, or a variable that no assign
  // or in-place update targets), so a kernel may read it before waiting for the previous
  // kernel to finish (CUDA's programmatic dependent launch, src/backends/cuda/device/pdl.cuh).
  uint64_t invariant_inputs = 0;

  bool input_invariant(int i) const { return i >= 0 && i < 64 && (invariant_inputs >> i & 1u); }
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
  // Reads strided views (a transposed matrix, overlapping frames) as they are: the planner
  // asks `supports` with the views, and where it says no, or the kernel has no strided
  // inputs, it gathers every input that is not contiguous and 16-byte aligned into the arena
  // first and asks again (runtime/views.h).
  bool strided_inputs = false;
};

// A backend is a device's memory (core/device_memory.h: allocate, release, copy, synchronize,
// copy_strided) plus its streams, kernels and graph capture.
class Backend : public DeviceMemory {
 public:
  virtual void* create_stream() { return nullptr; }
  virtual void destroy_stream(void*) {}

  // Makes this backend's device current on the calling thread and leaves it so; a no-op
  // where there is one device. Prefer DeviceScope, which gives the caller its device back.
  virtual void activate() const {}
  // DeviceScope's two halves: enter_device makes the device current and returns what to
  // restore (-1: nothing); restore_device puts it back and never throws.
  virtual int enter_device() const { return -1; }
  virtual void restore_device(int /*previous*/) const noexcept {}

  // Graph capture (CUDA graphs); backends without it keep the defaults. Neither call throws:
  // begin_capture returns false when no capture started, end_capture returns null when the
  // capture failed (a launch failed or was refused while capturing, or the graph did not
  // instantiate). Either way the stream is left out of capture mode with no error pending,
  // so the caller can run the same steps eagerly on it.
  virtual bool supports_graphs() const { return false; }
  virtual bool begin_capture(void*) { return false; }
  virtual std::shared_ptr<void> end_capture(void*) { return nullptr; }
  virtual void replay(const std::shared_ptr<void>&, void*) {}

  // Device data handed between Loom and another library (DLPack's stream exchange). Streams
  // are named as DLPack names them: on CUDA 1 (or 0) is the legacy default stream, 2 the
  // calling thread's per-thread default stream, any other value a cudaStream_t.
  //
  // The stream a producer is asked to make its work visible on (__dlpack__(stream=...));
  // 0 where there is none (host memory needs no ordering).
  virtual intptr_t handoff_stream() const { return 0; }
  // Data written by work queued so far on `producer` is about to be read by Loom: every later
  // Loom read of this device's memory waits for that work on the device (no host wait).
  // After a producer has ordered its work on handoff_stream(), call it with that stream.
  virtual void accept_from_stream(intptr_t /*producer*/) {}
  // Data leaves Loom for a reader on `consumer`: that stream waits for anything Loom may
  // still have in flight for it (-1: the consumer takes care of ordering itself).
  virtual void release_to_stream(intptr_t /*consumer*/) {}
  // Makes `stream` (null: the calling thread's own) wait for every handoff accepted so far,
  // and for the work queued on the legacy default stream once memory was handed out to it
  // (a consumer may still read a dropped output or variable there that a run writes again).
  // An executable calls it at the start of each run; copies and gathers out of device memory
  // wait for handoffs themselves.
  virtual void wait_for_handoffs(void* /*stream*/) {}

  void add_kernel(const std::string& op, Kernel kernel);
  // Every kernel registered for the node's op that supports it, in registration order.
  std::vector<std::shared_ptr<const Kernel>> kernels_for(const ir::Node& node,
                                                         std::span<const TensorView> inputs) const;
  // The first of kernels_for(); null when none supports the node.
  const Kernel* find_kernel(const ir::Node& node, std::span<const TensorView> inputs) const;
  // Whether any kernel is registered for the op.
  bool has_kernel(const std::string& op) const { return kernels_.count(op) != 0; }

  // Test hooks: the kernels registered for an op, and replacing them (plans made before keep
  // the kernels they chose alive).
  std::vector<std::shared_ptr<const Kernel>> kernels(const std::string& op) const;
  void set_kernels(const std::string& op, std::vector<std::shared_ptr<const Kernel>> kernels);

 private:
  mutable std::mutex kernels_mutex_;
  std::map<std::string, std::vector<std::shared_ptr<const Kernel>>> kernels_;
};

// Makes a backend's device current for a scope, then gives the thread its previous device
// back, so that Loom never leaves a caller's thread on another GPU.
class DeviceScope {
 public:
  explicit DeviceScope(const Backend& backend)
      : backend_(backend), previous_(backend.enter_device()) {}
  ~DeviceScope() { backend_.restore_device(previous_); }
  DeviceScope(const DeviceScope&) = delete;
  DeviceScope& operator=(const DeviceScope&) = delete;

 private:
  const Backend& backend_;
  int previous_;
};

// The backend for a device; throws loom::Error(device) when it is not available.
Backend& backend_for(Device device);
// What identifies the device's kind in a tactic cache and a package: "cpu", or the GPU's name
// and the CUDA driver's version ("cuda NVIDIA H200 (driver 12080)").
std::string device_identity(Device device);

// The kernels a device kind's backend registers, made without the device (no GPU needed),
// so that tests can check every op has a kernel on every backend that is built. Throws
// loom::Error(device) for a kind this Loom was built without.
const Backend& kernel_table(DeviceKind kind);

}  // namespace loom
