// compile(): clones the graph, declares its variables, runs the passes, uploads constants
// and makes the executable.
#include <algorithm>
#include <map>

#include "compiler/pass_manager.h"
#include "ir/op_registry.h"
#include "loom/error.h"
#include "runtime/executable_impl.h"

namespace loom {

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

  compiler::check_pass_names(options);
  compiler::run_passes(*impl->program, options, impl->dumps);

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
