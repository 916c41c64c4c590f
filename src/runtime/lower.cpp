// Lowering for one binding of the symbols: concrete types, the memory plan, and one kernel
// call per node with precomputed views.
#include <algorithm>
#include <map>
#include <set>

#include "ir/op_registry.h"
#include "loom/error.h"
#include "runtime/executable_impl.h"
#include "runtime/memory_plan.h"

namespace loom {

using runtime::Plan;
using runtime::Step;

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

}  // namespace loom
