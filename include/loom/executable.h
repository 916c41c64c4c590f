// compile(), CompileOptions and Executable: compile once, run many times.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "loom/device.h"
#include "loom/graph.h"
#include "loom/tensor_data.h"

namespace loom {

// Named persistent tensors on one device; several executables may share one store.
class VariableStore {
 public:
  // Throws loom::Error(device) when the device is not there (variable_store.cpp).
  explicit VariableStore(Device device = Device::cpu());
  Device device() const { return device_; }
  bool has(const std::string& name) const { return values_.count(name) != 0; }
  // Throws loom::Error(value) for an unknown name.
  const TensorData& get(const std::string& name) const;
  // Replaces the value (copied to the store's device); the shape and dtype must match the
  // existing one, and the variable's buffer stays where it is.
  void set(const std::string& name, const TensorData& value);
  // Adds a variable (copied to the store's device) if absent.
  void declare(const std::string& name, const TensorData& initial);
  std::vector<std::string> names() const;

 private:
  Device device_;
  std::map<std::string, TensorData> values_;
};

using Feeds = std::map<std::string, TensorData>;

struct PassDump {
  std::string pass;   // the pass that just ran ("input" for the graph as built)
  std::string graph;  // the graph's text after it
};

struct CompileOptions {
  Device device = Device::cpu();
  // The values run() returns, in order. Assignments to variables are always kept.
  std::vector<Tensor> outputs;
  // Passes to skip, by name (see loom::pass_names()).
  std::set<std::string> disabled_passes;
  // Shared variables; when null the executable makes its own from the graph's initials.
  std::shared_ptr<VariableStore> variables;
  // Keep the graph's text after every pass (Executable::pass_dumps()).
  bool keep_pass_dumps = false;
  // CUDA: capture a run as a CUDA graph and replay it while the shapes stay the same.
  bool cuda_graphs = true;
};

// Statistics of the last run.
struct RunStats {
  size_t bytes_written = 0;     // bytes the kernels wrote to device memory
  size_t kernels = 0;           // kernel calls
  bool replayed_graph = false;  // CUDA graph replay
  bool planned = false;         // this run made a new plan (new symbol binding)
};

class Executable {
 public:
  Executable();
  ~Executable();
  Executable(Executable&&) noexcept;
  Executable& operator=(Executable&&) noexcept;

  // Runs with one TensorData per placeholder (any device; copied when needed) and returns
  // the outputs as new TensorData on the executable's device.
  std::vector<TensorData> run(const Feeds& feeds);
  // Writes the outputs into `outputs`, reusing their buffers when shape, dtype and device
  // fit: a steady-state call allocates nothing.
  void run(const Feeds& feeds, std::vector<TensorData>& outputs);

  Device device() const;
  VariableStore& variables();
  const std::shared_ptr<VariableStore>& variable_store() const;
  // The graph after all passes.
  std::string dump() const;
  // The graph after each pass (when CompileOptions::keep_pass_dumps).
  const std::vector<PassDump>& pass_dumps() const;
  const RunStats& last_run_stats() const;
  // Memory plan of the most recent symbol binding: arena size, and what the
  // intermediates would take without reuse.
  size_t arena_bytes() const;
  size_t unshared_intermediate_bytes() const;
  // Plans kept for the symbol bindings seen so far (at most 16; least recently used evicted).
  size_t cached_plans() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
  friend Executable compile(const Graph&, CompileOptions);
};

Executable compile(const Graph& graph, CompileOptions options = {});

// Names of the passes in the order they run.
std::vector<std::string> pass_names();

}  // namespace loom
