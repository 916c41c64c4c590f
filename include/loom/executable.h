// compile(), CompileOptions and Executable: compile once, run many times.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "loom/device.h"
#include "loom/graph.h"
#include "loom/tensor_data.h"

namespace loom {

// Named persistent tensors on one device; several executables may share one store.
// Thread-safe: every member locks the store, and Executable::run holds that lock for the
// whole run, so executables sharing a store run one at a time while others run freely.
// References returned by get() stay valid until the variable's buffer is replaced (adopt(),
// or the copy-on-write of set() and make_writable()), but read the data only while no run is
// going on (hold lock() to be sure).
//
// Ownership: a value is either the store's own buffer or shared bytes that the store never
// writes: a buffer adopted without a copy (a memory-mapped weight, a NumPy array) or, on the
// CPU, the graph's initial value. A shared value is copied on the first write (set(), or
// compiling an executable that assigns the variable), so a weight that is only read lives
// once per device however many graphs, executables and stores hold it.
class VariableStore {
 public:
  // Throws loom::Error(device) when the device is not there (variable_store.cpp).
  explicit VariableStore(Device device = Device::cpu());
  Device device() const { return device_; }
  bool has(const std::string& name) const {
    auto held = lock();
    return values_.count(name) != 0;
  }
  // Throws loom::Error(value) for an unknown name.
  const TensorData& get(const std::string& name) const;
  // Replaces the value (copied to the store's device); the shape and dtype must match the
  // existing one. An owned buffer stays where it is; a shared one is replaced by an owned
  // copy (copy-on-write; executables' plans are made again at their next run).
  void set(const std::string& name, const TensorData& value);
  // Adds a variable if absent: on the CPU, a contiguous CPU value is shared (the store never
  // writes it; see above), else copied to the store's device.
  void declare(const std::string& name, const TensorData& initial);
  // Adds or replaces a variable with `value` itself, without a copy: the buffer (and the
  // owner its Buffer keeps alive, such as a memory mapping) stays alive with the store, and
  // is never written (read-only memory is fine). `value` must be contiguous and on the
  // store's device; an existing variable keeps its shape and dtype. Executables' plans that
  // read the old value are made again at their next run.
  void adopt(const std::string& name, const TensorData& value);
  // True when the variable's bytes are shared (adopted or the graph's), not the store's own.
  bool is_shared(const std::string& name) const;
  // Makes a shared value the store's own (one copy); nothing when it already is. compile()
  // calls it for every variable the executable writes.
  void make_writable(const std::string& name);
  // Counts replacements of variable buffers: a plan made at another generation holds stale
  // addresses (Executable::run compares it).
  uint64_t generation() const {
    auto held = lock();
    return generation_;
  }
  std::vector<std::string> names() const;
  // Excludes runs of executables using this store while held (recursive: a thread holding
  // it may call the members above).
  std::unique_lock<std::recursive_mutex> lock() const {
    return std::unique_lock<std::recursive_mutex>(mutex_);
  }

 private:
  struct Entry {
    TensorData value;
    bool shared = false;
  };
  Entry& entry(const std::string& name);
  const Entry& entry(const std::string& name) const;

  Device device_;
  std::map<std::string, Entry> values_;
  uint64_t generation_ = 0;
  mutable std::recursive_mutex mutex_;
};

using Feeds = std::map<std::string, TensorData>;

struct PassDump {
  std::string pass;   // the pass that just ran ("input" for the graph as built)
  std::string graph;  // the graph's text after it
  std::string json;   // the same graph as JSON, for the viewer (loom/view.h)
};

// One node's time in a profiled run (Executable::profile).
struct NodeTime {
  int node = 0;  // the node's id (%N in the dump)
  std::string op;
  std::string kernel;  // kernel#tactic
  double ms = 0;
};

class Executable;

struct CompileOptions {
  Device device = Device::cpu();
  // Executables bound to the symbols of the graph's `call` nodes (loom/call.h); a symbol left
  // out may be bound later with Executable::bind, before a run reaches its call.
  std::map<std::string, std::shared_ptr<Executable>> callables;
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
  // Bindings of the symbolic dims to plan at compile time (each must bind every symbol of
  // the placeholders), so that their first run neither plans nor times kernels and dump()
  // shows their kernels. A graph without symbols is always planned at compile time.
  std::vector<std::map<std::string, int64_t>> plan_for;
  // Where several kernels or tactics can run a node, time them once on the node's shapes and
  // keep the fastest (false: take the first registered).
  bool time_tactics = true;
  // A file of timed choices, loaded at compile and rewritten when a plan times something;
  // empty: $LOOM_TACTIC_CACHE, and when that is unset too, the process's memory only.
  std::string tactic_cache;
  // CUDA: the directory of compiled generated kernels (fused elementwise groups), so that a
  // second process compiles nothing; empty: $LOOM_KERNEL_CACHE, and when that is unset too,
  // $XDG_CACHE_HOME/loom/kernels or ~/.cache/loom/kernels. "off": memory only.
  std::string kernel_cache;
  // Plans kept for symbol bindings (each holds an arena): at most this many, and at most
  // this many bytes of arenas; the least used (then least recent) binding is dropped first.
  size_t max_cached_plans = 16;
  size_t plan_cache_bytes = size_t(4) << 30;
};

// Statistics of the last run.
struct RunStats {
  size_t bytes_written = 0;     // bytes the kernels wrote to device memory
  size_t kernels = 0;           // kernel calls
  bool replayed_graph = false;  // CUDA graph replay
  bool planned = false;         // this run made a new plan (new symbol binding)
  // Feed bytes copied into the arena (feeds read in place, on the CPU, copy nothing).
  size_t feed_bytes_copied = 0;
};

// Thread-safe: run() and the other members lock a mutex of the executable, so threads may
// share one; two executables run concurrently unless they share a VariableStore, whose lock
// run() also holds (always after the executable's own). last_run_stats() returns a reference
// that the next run overwrites.
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
  // Plans kept for the symbol bindings seen so far (see CompileOptions::max_cached_plans).
  size_t cached_plans() const;
  // One ordinary run (assigns included; the outputs are dropped), eager (never a replayed
  // CUDA graph), with each step timed: on CUDA by a pair of events recorded on the
  // executable's stream around the step's kernels (device time, read after the run's one
  // synchronisation), on the CPU by the host clock around the step. Returns each step's time
  // in program order. The viewer shows the latest.
  std::vector<NodeTime> profile(const Feeds& feeds);
  // Binds `callee` to the symbol of this executable's `call` nodes (null unbinds), without
  // recompiling: runs that follow call it. Waits for a run in progress, so each run sees the
  // old callee or the new one wholly. Throws loom::Error when the graph has no call of that
  // name, or the callee's signature (its placeholders in the order made, and its one output)
  // does not fit the call's inputs and declared output, is on another device, assigns
  // variables, calls callables itself, or is this executable.
  void bind(const std::string& symbol, std::shared_ptr<Executable> callee);
  // The symbols of the graph's calls, and what each is bound to (null when unbound).
  std::map<std::string, std::shared_ptr<Executable>> callables() const;
  // The executable as a callable: "(x f32[1, seq, 64], ...) -> f32[1, seq, 8]".
  std::string signature() const;
  // For an executable made by loom::load: how its kernels were chosen ("tactics from the
  // package", or why they were chosen again). Empty for compile().
  std::string package_note() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
  friend Executable compile(const Graph&, CompileOptions);
  friend Executable make_executable(std::unique_ptr<Impl> impl);
  friend Impl& impl_of(const Executable& exe);
};

Executable compile(const Graph& graph, CompileOptions options = {});

// Names of the passes in the order they run.
std::vector<std::string> pass_names();

// Kernel or tactic candidates timed so far in this process (a plan whose choices all come
// from the tactic cache adds nothing).
size_t tactic_timings();
// Forgets the choices timed in this process (tests; a cache file is not touched).
void clear_tactic_cache();

}  // namespace loom
