// The state behind loom::Executable, shared by the files that bind feeds (bind_feeds.cpp),
// make plans (lower.cpp), run them (run.cpp), show them (dump.cpp) and by the compiler
// (src/compiler/compile.cpp), which fills it.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "ir/node.h"
#include "loom/executable.h"
#include "runtime/plan.h"
#include "runtime/tactic_cache.h"

namespace loom {

namespace runtime {
// What the call kernel looks up: the executable bound to each call symbol.
struct CallTable {
  std::map<std::string, std::shared_ptr<Executable>> bound;
};

// An executable as a callable: its placeholders in the order the graph made them, its
// outputs, and whether it may be called (no state writes, no calls of its own).
struct CallSignature {
  std::vector<std::pair<std::string, ir::TensorType>> inputs;
  std::vector<ir::TensorType> outputs;
  bool writes_state = false;
  bool has_calls = false;
};

// The types at one call node: its inputs and its declared output.
struct CallSite {
  std::vector<ir::TensorType> inputs;
  ir::TensorType output;
};
}  // namespace runtime

struct Executable::Impl {
  Device device;
  Backend* backend = nullptr;
  void* stream = nullptr;
  std::unique_ptr<ir::Program> program;
  std::shared_ptr<VariableStore> variables;
  std::set<std::string> graph_placeholders;         // every placeholder of the graph as built
  std::vector<const ir::Node*> placeholders;        // those still needed after the passes
  std::map<const ir::Node*, TensorData> constants;  // uploaded to the device
  std::vector<std::string> symbols;                 // every symbol of the placeholders, in order
  std::vector<const ir::Node*> variable_nodes;      // after the passes
  std::set<std::string> written_variables;          // targets of assigns and in-place updates
  // The store's generation the plans were made at: plans hold variables' addresses, so a
  // replaced variable buffer (adopt, copy-on-write) drops them (and their CUDA graphs).
  uint64_t store_generation = 0;
  std::vector<int64_t> bound;  // this run's size of each symbol (reused: no allocation)
  std::map<std::vector<int64_t>, std::unique_ptr<runtime::Plan>> plans;
  runtime::Plan* last_plan = nullptr;
  std::map<std::vector<int64_t>, uint64_t> evicted_uses;  // use counts of dropped plans
  std::vector<const Buffer*> in_place_feeds;              // this run's feeds read where they are
  std::vector<bool> direct_outputs;  // this run's outputs written in place (bind_outputs)
  uint64_t run_count = 0;
  std::vector<PassDump> dumps;
  RunStats stats;
  bool cuda_graphs = true;
  bool time_tactics = true;
  std::string kernel_cache;       // CompileOptions::kernel_cache
  std::string tactic_cache_path;  // rewritten when a plan times something; empty: none
  size_t max_cached_plans = 16;
  size_t plan_cache_bytes = 0;
  // A loaded package's kernel and tactic per node id, per binding (make_plan takes them
  // instead of the cache or timing); and what loading said about them.
  std::map<std::vector<int64_t>, std::map<int, runtime::TacticChoice>> preset_tactics;
  std::string package_note;
  // A loaded package's referenced weight files (resolved paths): saving it again references
  // them too (SaveOptions::weight_files).
  std::vector<std::string> weight_files;
  std::vector<NodeTime> last_profile;  // Executable::profile
  // Callables (src/runtime/call.cpp). A captured CUDA graph holds the callees' kernels and
  // arenas: bind() bumps bindings_version, and evicting a plan bumps plans_generation, and a
  // plan's graph records both (its callables_stamp) and is dropped when they change.
  runtime::CallSignature signature;
  std::map<std::string, std::vector<runtime::CallSite>> call_sites;
  runtime::CallTable callables;
  uint64_t bindings_version = 0;
  std::atomic<uint64_t> plans_generation{0};
  // Held by every member of Executable: runs, plans and stats belong to one thread at a time.
  std::mutex mutex;

  ~Impl() {
    // The stream first: destroying it waits for its work, so no kernel still uses an arena
    // (a run that threw may have left work queued).
    if (backend && stream) backend->destroy_stream(stream);
    plans.clear();
  }

  // plan_cache.cpp: checks that the store holds every variable, with the node's shape and
  // dtype (loom::Error(value) naming a missing one when `require_all`, else false), and
  // gives each variable this executable writes a buffer of the store's own.
  bool ready_variables(bool require_all);
  // bind_feeds.cpp: checks the feeds and returns the size of each symbol.
  const std::vector<int64_t>& bind(const Feeds& feeds);
  // lower.cpp: concrete types, the memory plan and one kernel call per node.
  std::unique_ptr<runtime::Plan> make_plan(const SymbolBinding& binding);
  // plan_cache.cpp: the plan for a binding (`key`: one size per symbol), made and cached
  // when new, evicting by use count, recency and the cache's byte budget.
  runtime::Plan& plan_for(const std::vector<int64_t>& key);
  // run.cpp: what run() and profile() hold through a call, taken in a fixed order: the
  // executable, then its variable store (see executable.h); and the executable's GPU, current
  // for the call only (the caller's thread keeps its device). The call's stats start afresh.
  struct RunScope {
    explicit RunScope(Impl& impl);
    std::lock_guard<std::mutex> lock;
    std::unique_lock<std::recursive_mutex> store_lock;
    DeviceScope device;
  };
  // Runs each step's kernel in order; `hook` (profile.cpp) is called before (false) and
  // after (true) each one.
  using StepHook = std::function<void(runtime::Step&, bool after)>;
  // run.cpp: one run of `plan`, for run() and profile() (inside a RunScope): feeds in, the
  // steps, outputs out, snapshots, assigns, one synchronisation (also when it throws: nothing
  // queued outlives an error), the run's stats. Without a hook (run()) outputs may be written
  // in place (bind_outputs) and the steps may be a captured CUDA graph (run_steps); with one
  // (profile()) the steps and assigns run eagerly through `launch` with the hook.
  void execute(runtime::Plan& plan, const Feeds& feeds, std::vector<TensorData>& outputs,
               const StepHook* hook = nullptr);
  void copy_feeds(runtime::Plan& plan, const Feeds& feeds);
  void run_steps(runtime::Plan& plan);
  void launch(std::vector<runtime::Step>& steps, const StepHook* hook = nullptr);
  void copy_view(void* dst, const TensorView& view);
  void copy_outputs(const runtime::Plan& plan, std::vector<TensorData>& outputs);
  // run.cpp (CPU): points each direct output slot's views at the caller's buffer (reused
  // when it fits, else a new one), so its step writes there and copy_outputs skips it;
  // unbind_outputs points them back at the arena.
  void bind_outputs(runtime::Plan& plan, std::vector<TensorData>& outputs);
  void unbind_outputs(runtime::Plan& plan);
  // call.cpp: runs this executable as a callee on the caller's stream, inside the caller's
  // run (and CUDA capture): feeds copied into its arena, its steps, its output copied into
  // `out`; nothing synchronised and, once planned, nothing allocated on the device.
  void run_inline(void* caller_stream, const Feeds& feeds, std::span<TensorView> out);
  // call.cpp: the callables' part of a plan's CUDA graph stamp.
  void callables_stamp(std::vector<uint64_t>& stamp) const;
  bool callables_stamp_matches(const std::vector<uint64_t>& stamp) const;
};

// call.cpp: the executable's signature as a callable and its call sites, from the program as
// built (before the passes), with its outputs recorded.
void record_call_signature(Executable::Impl& impl);

// Wraps a filled state (compile, load).
Executable make_executable(std::unique_ptr<Executable::Impl> impl);

// The state of `exe` (packages, the viewer); throws loom::Error(value) when empty.
Executable::Impl& impl_of(const Executable& exe);

// The executable's state; throws loom::Error(value) for an empty (moved-from) Executable.
Executable::Impl& checked_impl(const std::unique_ptr<Executable::Impl>& impl);

}  // namespace loom
