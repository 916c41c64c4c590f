// Evaluates nodes whose inputs are all constants (on the CPU, once, at compile time) and
// replaces them by constants. Large results stay unfolded: folding a broadcast into a
// big constant would trade a cheap kernel for memory.
#include "ir/op_registry.h"
#include "passes/pass.h"
#include "runtime/evaluate.h"

namespace loom::passes {

static constexpr int64_t kMaxFoldedElements = 1 << 20;

void fold_constants(ir::Program& program, const PassContext&) {
  const ir::OpDef& constant = ir::OpRegistry::instance().at("constant");
  std::vector<ir::Node*> nodes;
  for (const auto& n : program.nodes()) nodes.push_back(n.get());
  for (ir::Node* n : nodes) {
    if (!n->op->foldable || n->op->has_side_effect || n->op->is_source) continue;
    bool all_constant = true;
    for (const auto& in : n->inputs) all_constant &= in.node->op == &constant;
    if (!all_constant) continue;
    bool small = true;
    for (const auto& type : n->outputs) {
      if (!is_static(type.shape) || numel(static_extents(type.shape)) > kMaxFoldedElements)
        small = false;
    }
    if (!small) continue;
    std::vector<TensorData> inputs;
    for (const auto& in : n->inputs) inputs.push_back(in.node->attrs.get<TensorData>("value"));
    auto results = runtime::evaluate_node(*n, inputs, Device::cpu());
    for (size_t i = 0; i < results.size(); ++i) {
      auto c = std::make_unique<ir::Node>();
      c->id = program.next_id();
      c->op = &constant;
      c->attrs.set("value", results[i].contiguous().clone());
      c->outputs = {n->outputs[i]};
      ir::Node* folded = program.insert_before(n, std::move(c));
      program.replace_uses({n, int(i)}, {folded, 0});
    }
    program.erase(n);
  }
}

}  // namespace loom::passes
