#include "loom/executable.h"

#include <algorithm>
#include <map>
#include <set>

#include "backends/backend.h"
#include "ir/op_registry.h"
#include "loom/error.h"
#include "passes/pass.h"
#include "runtime/memory_plan.h"
#include "runtime/plan.h"

namespace loom {

using runtime::Plan;
using runtime::Step;

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
  std::vector<int64_t> bound;  // this run's size of each symbol (reused: no allocation)
  std::map<std::vector<int64_t>, std::unique_ptr<Plan>> plans;
  Plan* last_plan = nullptr;
  uint64_t run_count = 0;
  std::vector<PassDump> dumps;
  RunStats stats;
  bool cuda_graphs = true;

  ~Impl() {
    // The stream first: destroying it waits for its work, so no kernel still uses an arena
    // (a run that threw may have left work queued).
    if (backend && stream) backend->destroy_stream(stream);
    plans.clear();
  }

  const std::vector<int64_t>& bind(const Feeds& feeds);
  std::unique_ptr<Plan> make_plan(const SymbolBinding& binding);
  void copy_feeds(const Plan& plan, const Feeds& feeds);
  void run_steps(Plan& plan);
  void launch(std::vector<Step>& steps);
  void copy_outputs(const Plan& plan, std::vector<TensorData>& outputs);
};

// ---- binding feeds to placeholders --------------------------------------------------

// Checks every feed against its placeholder and records the size of each symbol. Messages
// are built only on failure, so a steady-state run allocates nothing here.
const std::vector<int64_t>& Executable::Impl::bind(const Feeds& feeds) {
  for (const auto& [name, data] : feeds) {
    if (!graph_placeholders.count(name)) {
      std::string known;
      for (const auto& p : graph_placeholders) known += (known.empty() ? "" : ", ") + p;
      fail(ErrorKind::value, "feed '" + name + "' matches no placeholder (placeholders: " +
                                 (known.empty() ? "none" : known) + ")");
    }
    if (!data.defined()) fail(ErrorKind::value, "feed '" + name + "' is empty");
  }
  bound.assign(symbols.size(), -1);
  for (const ir::Node* p : placeholders) {
    const ir::TensorType& declared = p->type();
    auto it = feeds.find(p->name);
    if (it == feeds.end())
      fail(ErrorKind::value,
           "missing feed for placeholder '" + p->name + "' (" + declared.str() + ")");
    const TensorData& data = it->second;
    auto mismatch = [&](ErrorKind kind, const std::string& why) {
      fail(kind, "feed '" + p->name + "' " + dtype_name(data.dtype()) + to_string(data.shape()) +
                     " does not fit placeholder " + declared.str() + ": " + why);
    };
    if (data.dtype() != declared.dtype) mismatch(ErrorKind::dtype, "wrong dtype");
    if (size_t(data.rank()) != declared.shape.size()) mismatch(ErrorKind::shape, "wrong rank");
    for (size_t d = 0; d < declared.shape.size(); ++d) {
      const Dim& dim = declared.shape[d];
      int64_t size = data.shape()[d];
      if (dim.is_static()) {
        if (dim.value() != size)
          mismatch(ErrorKind::shape, "dim " + std::to_string(d) + " must be " + dim.str());
        continue;
      }
      size_t s = size_t(std::find(symbols.begin(), symbols.end(), dim.symbol()) - symbols.begin());
      if (bound[s] < 0) {
        bound[s] = size;
      } else if (bound[s] != size) {
        std::string first;
        for (const ir::Node* q : placeholders)
          for (const auto& qd : q->type().shape)
            if (first.empty() && qd == dim) first = q->name;
        mismatch(ErrorKind::shape, "'" + dim.symbol() + "' is " + std::to_string(size) +
                                       " here but " + std::to_string(bound[s]) + " in feed '" +
                                       first + "'");
      }
    }
  }
  return bound;
}

// ---- planning -----------------------------------------------------------------------

static TensorView view_of(void* data, const ir::TensorType& type) {
  Extents shape = static_extents(type.shape);
  return {data, type.dtype, shape, contiguous_strides(shape)};
}

std::unique_ptr<Plan> Executable::Impl::make_plan(const SymbolBinding& binding) {
  auto plan = std::make_unique<Plan>();
  plan->binding = binding;
  const auto& nodes = program->nodes();
  std::map<const ir::Node*, int> position;
  std::map<const ir::Node*, std::vector<ir::TensorType>> types;

  // 1. Concrete types: inference again, now with every dim known.
  for (size_t i = 0; i < nodes.size(); ++i) {
    const ir::Node* n = nodes[i].get();
    position[n] = int(i);
    std::vector<ir::TensorType> in;
    for (const auto& v : n->inputs) in.push_back(types.at(v.node).at(size_t(v.output)));
    ir::InferContext ctx{n->op_name(), in, n->attrs, &binding};
    auto out = n->op->infer(ctx);
    for (const auto& t : out)
      for (const auto& d : t.shape)
        if (!d.is_static())
          fail(ErrorKind::shape, n->op_name() + " (%" + std::to_string(n->id) + ") has shape " +
                                     to_string(t.shape) + ": symbolic dim '" + d.symbol() +
                                     "' is bound by no placeholder");
    types[n] = std::move(out);
  }

  // 2. Storage: arena values get lifetimes; aliases share their root's storage.
  std::map<ir::Value, ir::Value> root_of;
  std::map<ir::Value, int> arena_index;
  std::vector<runtime::Lifetime> lifetimes;
  auto root = [&](ir::Value v) {
    auto it = root_of.find(v);
    return it == root_of.end() ? v : it->second;
  };
  for (const auto& node : nodes) {
    ir::Node* n = node.get();
    if (n->op->aliases_input >= 0) {
      root_of[{n, 0}] = root(n->inputs.at(size_t(n->op->aliases_input)));
      continue;
    }
    bool in_arena = n->is(ir::OpRole::placeholder) || !n->op->is_source;
    if (!in_arena) continue;
    // Feeds are copied in before any step runs, so a placeholder lives from the start.
    int first = n->is(ir::OpRole::placeholder) ? 0 : position[n];
    for (size_t o = 0; o < n->outputs.size(); ++o) {
      const auto& t = types[n][o];
      arena_index[{n, int(o)}] = int(lifetimes.size());
      lifetimes.push_back(
          {storage_bytes(t.dtype, numel(static_extents(t.shape))), first, position[n]});
    }
  }
  // Assigns run after every other step, so what they store lives to the end.
  int end = int(nodes.size());
  for (const auto& node : nodes)
    for (const auto& in : node->inputs) {
      auto it = arena_index.find(root(in));
      int use = node->is(ir::OpRole::assign) ? end : position[node.get()];
      if (it != arena_index.end())
        lifetimes[size_t(it->second)].last = std::max(lifetimes[size_t(it->second)].last, use);
    }
  for (const auto& out : program->outputs()) {
    auto it = arena_index.find(root(out));
    if (it != arena_index.end()) lifetimes[size_t(it->second)].last = end;
  }
  // An assign whose value is the buffer of another assigned variable reads a snapshot taken
  // before any assign runs, so that assign(a, read(b)); assign(b, read(a)) swaps them.
  std::set<const ir::Node*> assigned;
  for (const auto& node : nodes)
    if (node->is(ir::OpRole::assign)) assigned.insert(node->inputs[0].node);
  std::map<const ir::Node*, int> snapshot_index;
  for (const auto& node : nodes) {
    if (!node->is(ir::OpRole::assign)) continue;
    ir::Value value = root(node->inputs[1]);
    if (!assigned.count(value.node) || value.node == node->inputs[0].node) continue;
    const auto& t = types.at(node->inputs[1].node).at(size_t(node->inputs[1].output));
    snapshot_index[node.get()] = int(lifetimes.size());
    lifetimes.push_back({storage_bytes(t.dtype, numel(static_extents(t.shape))), end, end});
  }
  runtime::ArenaLayout layout = runtime::plan_arena(lifetimes);
  plan->arena_bytes = layout.total_bytes;
  plan->unshared_bytes = layout.unshared_bytes;
  plan->arena = Buffer::allocate(device, std::max<size_t>(layout.total_bytes, 1));
  char* base = static_cast<char*>(plan->arena->data());

  // 3. Views of every value.
  std::map<ir::Value, TensorView> views;
  for (const auto& node : nodes) {
    const ir::Node* n = node.get();
    ir::Node* mut = node.get();
    for (size_t o = 0; o < n->outputs.size(); ++o) {
      ir::Value v{mut, int(o)};
      const auto& t = types[n][o];
      void* data = nullptr;
      if (n->op->aliases_input >= 0) {
        data = views.at(n->inputs.at(size_t(n->op->aliases_input))).data;
      } else if (n->is(ir::OpRole::constant)) {
        data = constants.at(n).data();
      } else if (n->is(ir::OpRole::variable)) {
        data = variables->get(n->name).data();
      } else {
        data = base + layout.offsets[size_t(arena_index.at(v))];
      }
      views[v] = view_of(data, t);
    }
  }

  // 4. Steps, feeds and outputs.
  for (const auto& node : nodes) {
    const ir::Node* n = node.get();
    if (n->is(ir::OpRole::placeholder)) {
      plan->feeds.push_back({n->name, views.at({node.get(), 0})});
      continue;
    }
    bool writes_state = n->op->writes_state();
    if (n->op->is_source || (n->op->aliases_input >= 0 && !writes_state)) continue;
    Step step;
    step.node = n;
    for (const auto& in : n->inputs) step.inputs.push_back(views.at(in));
    for (size_t o = 0; o < n->outputs.size(); ++o)
      step.outputs.push_back(views.at({node.get(), int(o)}));
    step.kernel = backend->find_kernel(*n, step.inputs);
    if (!step.kernel) {
      std::string in;
      for (const auto& v : step.inputs)
        in += std::string(in.empty() ? "" : ", ") + dtype_name(v.dtype) + to_string(v.shape);
      fail(ErrorKind::unsupported,
           "no " + device.str() + " kernel for op '" + n->op_name() + "' with inputs (" + in + ")");
    }
    // Ops that write state (assign, slice_update_inplace) move only their input 1: the value
    // or the update window.
    if (writes_state) {
      step.bytes_written = step.inputs.at(1).nbytes();
    } else {
      for (const auto& o : step.outputs) step.bytes_written += o.nbytes();
    }
    plan->bytes_written += step.bytes_written;
    if (auto snap = snapshot_index.find(n); snap != snapshot_index.end()) {
      TensorView copy = step.inputs[1];
      copy.data = base + layout.offsets[size_t(snap->second)];
      plan->snapshots.push_back({step.inputs[1], copy});
      step.inputs[1] = copy;
    }
    (n->is(ir::OpRole::assign) ? plan->assign_steps : plan->steps).push_back(std::move(step));
  }
  for (const auto& out : program->outputs()) plan->outputs.push_back(views.at(out));
  return plan;
}

// ---- running ------------------------------------------------------------------------

void Executable::Impl::copy_feeds(const Plan& plan, const Feeds& feeds) {
  for (const auto& slot : plan.feeds) {
    const TensorData& data = feeds.at(slot.name);
    // Only a strided feed is gathered first; a contiguous one is copied straight in.
    TensorData gathered;
    if (!data.is_contiguous()) gathered = data.contiguous();
    const TensorData& src = data.is_contiguous() ? data : gathered;
    Device from = src.device();
    Backend& b = (from == Device::cpu() || from == device) ? *backend : backend_for(from);
    b.copy(slot.view.data, device, src.data(), from, slot.view.nbytes(), stream);
    if (gathered.defined()) b.synchronize(stream);  // the gathered copy is freed next
  }
}

void Executable::Impl::launch(std::vector<Step>& steps) {
  for (auto& step : steps) {
    KernelContext ctx{*backend, stream, &step.state};
    try {
      step.kernel->run(ctx, *step.node, step.inputs, step.outputs);
    } catch (const Error& e) {
      if (e.kind() != ErrorKind::device) throw;
      throw Error(e.kind(), step.node->op_name() + " (%" + std::to_string(step.node->id) +
                                ", kernel " + step.kernel->name + "): " + e.what());
    }
  }
}

void Executable::Impl::run_steps(Plan& plan) {
  bool use_graphs = cuda_graphs && backend->supports_graphs() && !plan.capture_failed;
  stats.replayed_graph = false;
  if (use_graphs && plan.graph) {
    backend->replay(plan.graph, stream);
    stats.replayed_graph = true;
  } else if (use_graphs && plan.runs >= 1) {
    // Kernels have built their per-node state on the eager first run; capture now.
    backend->begin_capture(stream);
    try {
      launch(plan.steps);
    } catch (...) {
      try {
        backend->end_capture(stream);
      } catch (const Error&) {
      }
      throw;
    }
    try {
      plan.graph = backend->end_capture(stream);
    } catch (const Error&) {
      plan.capture_failed = true;
    }
    if (plan.graph) {
      backend->replay(plan.graph, stream);
      stats.replayed_graph = true;
    } else {
      plan.capture_failed = true;
      launch(plan.steps);
    }
  } else {
    launch(plan.steps);
  }
  ++plan.runs;
}

void Executable::Impl::copy_outputs(const Plan& plan, std::vector<TensorData>& outputs) {
  outputs.resize(plan.outputs.size());
  for (size_t i = 0; i < plan.outputs.size(); ++i) {
    const TensorView& v = plan.outputs[i];
    TensorData& out = outputs[i];
    bool reusable = out.defined() && out.dtype() == v.dtype && out.shape() == v.shape &&
                    out.device() == device && out.is_contiguous();
    for (size_t j = 0; reusable && j < i; ++j) reusable = outputs[j].buffer() != out.buffer();
    if (!reusable) out = TensorData::empty(v.dtype, v.shape, device);
    backend->copy(out.data(), device, v.data, device, v.nbytes(), stream);
  }
}

// ---- Executable -----------------------------------------------------------------------

Executable::Executable() = default;
Executable::~Executable() = default;
Executable::Executable(Executable&&) noexcept = default;
Executable& Executable::operator=(Executable&&) noexcept = default;

static Executable::Impl& checked(const std::unique_ptr<Executable::Impl>& impl) {
  if (!impl) fail(ErrorKind::value, "use of an empty Executable (made by compile())");
  return *impl;
}

std::vector<TensorData> Executable::run(const Feeds& feeds) {
  std::vector<TensorData> outputs;
  run(feeds, outputs);
  return outputs;
}

void Executable::run(const Feeds& feeds, std::vector<TensorData>& outputs) {
  Impl& impl = checked(impl_);
  const std::vector<int64_t>& key = impl.bind(feeds);
  auto it = impl.plans.find(key);
  impl.stats = RunStats{};
  if (it == impl.plans.end()) {
    // Each plan holds an arena (and on CUDA a graph): keep the most recently used ones only,
    // so that, say, prefills of many lengths do not grow memory without bound.
    if (impl.plans.size() >= runtime::kMaxCachedPlans) {
      auto oldest = impl.plans.begin();
      for (auto p = impl.plans.begin(); p != impl.plans.end(); ++p)
        if (p->second->last_used < oldest->second->last_used) oldest = p;
      if (impl.last_plan == oldest->second.get()) impl.last_plan = nullptr;
      impl.plans.erase(oldest);
    }
    SymbolBinding binding;
    for (size_t i = 0; i < impl.symbols.size(); ++i) binding[impl.symbols[i]] = key[i];
    it = impl.plans.emplace(key, impl.make_plan(binding)).first;
    impl.stats.planned = true;
  }
  Plan& plan = *it->second;
  impl.last_plan = &plan;
  plan.last_used = ++impl.run_count;
  impl.copy_feeds(plan, feeds);
  impl.backend->activate();  // a feed copied from another device may have switched it
  impl.run_steps(plan);
  impl.copy_outputs(plan, outputs);
  for (const auto& [from, to] : plan.snapshots)
    impl.backend->copy(to.data, impl.device, from.data, impl.device, from.nbytes(), impl.stream);
  impl.launch(plan.assign_steps);
  impl.backend->synchronize(impl.stream);
  impl.stats.kernels = plan.steps.size() + plan.assign_steps.size();
  impl.stats.bytes_written = plan.bytes_written;
}

Device Executable::device() const { return checked(impl_).device; }
VariableStore& Executable::variables() { return *checked(impl_).variables; }
const std::shared_ptr<VariableStore>& Executable::variable_store() const {
  return checked(impl_).variables;
}
const std::vector<PassDump>& Executable::pass_dumps() const { return checked(impl_).dumps; }
const RunStats& Executable::last_run_stats() const { return checked(impl_).stats; }
size_t Executable::arena_bytes() const {
  const Impl& impl = checked(impl_);
  return impl.last_plan ? impl.last_plan->arena_bytes : 0;
}
size_t Executable::unshared_intermediate_bytes() const {
  const Impl& impl = checked(impl_);
  return impl.last_plan ? impl.last_plan->unshared_bytes : 0;
}
size_t Executable::cached_plans() const { return checked(impl_).plans.size(); }

std::string Executable::dump() const {
  const Impl& impl = checked(impl_);
  std::string s = impl.program->dump();
  if (impl.last_plan) {
    s += "kernels (" + impl.device.str() + "):\n";
    for (const auto& step : impl.last_plan->steps)
      s += "  %" + std::to_string(step.node->id) + " " + step.node->op_name() + " -> " +
           step.kernel->name + "\n";
  }
  return s;
}

// ---- compile ------------------------------------------------------------------------

Executable compile(const Graph& graph, CompileOptions options) {
  auto impl = std::make_unique<Executable::Impl>();
  impl->device = options.device;
  impl->backend = &backend_for(options.device);
  impl->cuda_graphs = options.cuda_graphs;

  std::vector<std::pair<const ir::Node*, ir::Node*>> map;
  impl->program = graph.program()->clone(&map);
  std::map<const ir::Node*, ir::Node*> remap(map.begin(), map.end());
  for (const auto& t : options.outputs) {
    if (!t.defined()) fail(ErrorKind::value, "compile: an output tensor is undefined");
    if (t.program() != graph.program())
      fail(ErrorKind::value, "compile: an output tensor belongs to another graph");
    if (t.node()->outputs.empty())
      fail(ErrorKind::value, "compile: '" + t.op() + "' has no value to return");
    impl->program->outputs().push_back({remap.at(t.node()), t.output()});
  }

  impl->variables =
      options.variables ? options.variables : std::make_shared<VariableStore>(options.device);
  if (impl->variables->device() != options.device)
    fail(ErrorKind::device, "compile: the variable store lives on " +
                                impl->variables->device().str() + ", the executable on " +
                                options.device.str());
  for (const auto& n : impl->program->nodes()) {
    if (n->is(ir::OpRole::variable))
      impl->variables->declare(n->name, n->attrs.get<TensorData>("initial"));
    if (n->is(ir::OpRole::placeholder)) impl->graph_placeholders.insert(n->name);
  }

  for (const auto& name : options.disabled_passes) {
    bool known = false;
    for (const auto& p : passes::all_passes()) known |= p.name == name;
    if (!known) {
      std::string all;
      for (const auto& p : passes::all_passes()) all += (all.empty() ? "" : ", ") + p.name;
      fail(ErrorKind::value, "compile: unknown pass '" + name + "' (passes: " + all + ")");
    }
  }
  passes::PassContext ctx{options.device};
  if (options.keep_pass_dumps) impl->dumps.push_back({"input", impl->program->dump()});
  for (const auto& pass : passes::all_passes()) {
    if (options.disabled_passes.count(pass.name)) continue;
    pass.run(*impl->program, ctx);
    if (options.keep_pass_dumps) impl->dumps.push_back({pass.name, impl->program->dump()});
  }

  for (const auto& n : impl->program->nodes()) {
    if (n->is(ir::OpRole::placeholder)) {
      impl->placeholders.push_back(n.get());
      for (const auto& d : n->type().shape)
        if (d.is_symbol() && std::find(impl->symbols.begin(), impl->symbols.end(), d.symbol()) ==
                                 impl->symbols.end())
          impl->symbols.push_back(d.symbol());
    }
    if (n->is(ir::OpRole::constant))
      impl->constants[n.get()] = n->attrs.get<TensorData>("value").to(options.device);
  }
  impl->stream = impl->backend->create_stream();

  Executable exe;
  exe.impl_ = std::move(impl);
  return exe;
}

}  // namespace loom
