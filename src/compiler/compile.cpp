// compile(): clones the graph, declares its variables, runs the passes, uploads constants,
// checks that the device has a kernel for every node, and plans the bindings known now.
#include "compiler/compile.h"

#include <algorithm>
#include <functional>
#include <map>
#include <optional>
#include <unordered_map>

#include "compiler/pass_manager.h"
#include "ir/op_registry.h"
#include "loom/error.h"
#include "ops/view_layouts.h"
#include "runtime/executable_impl.h"
#include "runtime/kernel_selection.h"
#include "runtime/memory_plan.h"
#include "runtime/tactic_cache.h"
#include "runtime/views.h"

namespace loom {

namespace {

// Every node that needs a kernel has one on the device for its dtypes and rank, asked with
// each symbolic extent set to 1 (a plan later asks again with the real extents). An input
// that an alias op makes a view (a transposed weight, a slice) is offered as that view, as the
// planner will offer it: a kernel that reads only such views (the CUDA GEMV reads W^T only)
// is found here too.
void check_kernels_exist(const Executable::Impl& impl) {
  auto extents_of = [](const ir::TensorType& t) {
    Extents shape;
    for (const auto& d : t.shape) shape.push_back(d.is_static() && d.value() >= 0 ? d.value() : 1);
    return shape;
  };
  std::unordered_map<const ir::Node*, Strides> strides_of;  // output 0 of each node
  std::function<Strides(ir::Value)> strides = [&](ir::Value v) -> Strides {
    const Extents shape = extents_of(v.node->type(v.output));
    const ops::ViewFn* view = v.output == 0 ? ops::view_function(*v.node->op) : nullptr;
    if (!view || v.node->inputs.empty()) return contiguous_strides(shape);
    if (auto it = strides_of.find(v.node); it != strides_of.end()) return it->second;
    const ir::Value in = v.node->inputs[0];
    std::optional<ops::ViewLayout> layout =
        (*view)(*v.node, extents_of(in.node->type(in.output)), strides(in), shape);
    Strides out = layout && layout->offset == 0 ? layout->strides : contiguous_strides(shape);
    strides_of.emplace(v.node, out);
    return out;
  };
  alignas(runtime::kArenaAlignment) static char nowhere[runtime::kArenaAlignment];
  std::vector<TensorView> in;
  for (const auto& n : impl.program->nodes()) {
    if (!runtime::needs_kernel(*n)) continue;
    in.clear();
    for (const auto& v : n->inputs) {
      const ir::TensorType& t = v.node->type(v.output);
      in.push_back(TensorView{nowhere, t.dtype, extents_of(t), strides(v)});
    }
    if (!impl.backend->kernels_for(*n, in).empty()) continue;
    // The planner gathers a view that no kernel reads as it is (runtime::candidates_for):
    // offered contiguous, as the gathered copy will be.
    std::vector<TensorView> gathered = in;
    for (auto& v : gathered)
      if (!runtime::plain_view(v)) v.strides = contiguous_strides(v.shape);
    if (impl.backend->kernels_for(*n, gathered).empty())
      runtime::fail_no_kernel(impl.device, *n, in);
  }
}

// Plans made now: the only binding of a graph without symbols, and CompileOptions::plan_for.
void plan_ahead(Executable::Impl& impl, const CompileOptions& options) {
  auto store_lock = impl.variables->lock();
  // Variables the store does not hold yet (Graph::variable(name, shape, dtype)) are supplied
  // before the first run, which plans then.
  if (!impl.ready_variables(false)) {
    impl.stats = RunStats{};
    return;
  }
  if (impl.symbols.empty()) impl.plan_for({});
  for (const auto& binding : options.plan_for) {
    std::string symbols;
    for (const auto& s : impl.symbols) symbols += (symbols.empty() ? "" : ", ") + s;
    std::vector<int64_t> key;
    for (const auto& s : impl.symbols) {
      auto it = binding.find(s);
      if (it == binding.end())
        fail(ErrorKind::value,
             "compile: a plan_for binding does not bind '" + s + "' (symbols: " + symbols + ")");
      if (it->second < 0)
        fail(ErrorKind::shape, "compile: plan_for binds '" + s + "' to " +
                                   std::to_string(it->second) + " (a size is never negative)");
      key.push_back(it->second);
    }
    for (const auto& [name, size] : binding)
      if (std::find(impl.symbols.begin(), impl.symbols.end(), name) == impl.symbols.end())
        fail(ErrorKind::value, "compile: plan_for binds '" + name +
                                   "', which is no symbol of the placeholders (symbols: " +
                                   (symbols.empty() ? "none" : symbols) + ")");
    impl.plan_for(key);
  }
  impl.stats = RunStats{};
}

}  // namespace

namespace compiler {

void declare_variables(Executable::Impl& impl, const CompileOptions& options) {
  impl.variables =
      options.variables ? options.variables : std::make_shared<VariableStore>(impl.device);
  if (impl.variables->device() != impl.device)
    fail(ErrorKind::device, "compile: the variable store lives on " +
                                impl.variables->device().str() + ", the executable on " +
                                impl.device.str());
  for (const auto& n : impl.program->nodes()) {
    // A variable without an initial value gets its value from the store (checked at plan).
    if (n->is(ir::OpRole::variable) && n->attrs.has("initial"))
      impl.variables->declare(n->name, n->attrs.get<TensorData>("initial"));
    if (n->is(ir::OpRole::placeholder)) impl.graph_placeholders.insert(n->name);
  }
}

// The variable a value is, through read and other aliasing ops; null for other values.
static const ir::Node* variable_behind(ir::Value v) {
  for (int source = v.node->op->aliased_input(v.output); source >= 0;
       source = v.node->op->aliased_input(v.output))
    v = v.node->inputs.at(size_t(source));
  return v.node->is(ir::OpRole::variable) ? v.node : nullptr;
}

void prepare_runtime(Executable::Impl& impl, const CompileOptions& options) {
  for (const auto& n : impl.program->nodes()) {
    if (n->is(ir::OpRole::variable)) impl.variable_nodes.push_back(n.get());
    for (int i = 0; i < n->op->written_inputs(); ++i)
      if (const ir::Node* var = variable_behind(n->inputs.at(size_t(i))))
        impl.written_variables.insert(var->name);
    if (n->is(ir::OpRole::placeholder)) {
      impl.placeholders.push_back(n.get());
      for (const auto& d : n->type().shape)
        if (d.is_symbol() &&
            std::find(impl.symbols.begin(), impl.symbols.end(), d.symbol()) == impl.symbols.end())
          impl.symbols.push_back(d.symbol());
    }
    if (n->is(ir::OpRole::constant))
      impl.constants[n.get()] = n->attrs.get<TensorData>("value").to(impl.device);
  }
  impl.stream = impl.backend->create_stream();
  impl.cuda_graphs = options.cuda_graphs;
  impl.time_tactics = options.time_tactics;
  impl.kernel_cache = options.kernel_cache;
  impl.tactic_cache_path = runtime::tactic_cache_path(options.tactic_cache);
  if (!impl.tactic_cache_path.empty()) runtime::load_tactic_cache(impl.tactic_cache_path);
  impl.max_cached_plans = options.max_cached_plans;
  impl.plan_cache_bytes = options.plan_cache_bytes;
  check_kernels_exist(impl);
}

}  // namespace compiler

Executable compile(const Graph& graph, CompileOptions options) {
  auto impl = std::make_unique<Executable::Impl>();
  impl->device = options.device;
  impl->backend = &backend_for(options.device);

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
  record_call_signature(*impl);
  compiler::declare_variables(*impl, options);
  compiler::check_pass_names(options);
  compiler::run_passes(*impl->program, options, impl->dumps);
  compiler::prepare_runtime(*impl, options);
  plan_ahead(*impl, options);
  Executable exe = make_executable(std::move(impl));
  for (const auto& [symbol, callee] : options.callables) exe.bind(symbol, callee);
  return exe;
}

}  // namespace loom
