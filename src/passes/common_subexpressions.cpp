// Merges nodes that compute the same op on the same inputs with the same attributes.
#include <map>

#include "ir/op_registry.h"
#include "passes/pass.h"

namespace loom::passes {

static std::string key_of(const ir::Node& n) {
  std::string key = n.op_name() + "(";
  for (const auto& in : n.inputs)
    key += std::to_string(in.node->id) + ":" + std::to_string(in.output) + ",";
  // TensorData attributes print only dtype and shape; equal keys are confirmed by a full
  // comparison of the attributes below.
  return key + ")" + n.attrs.str();
}

void eliminate_common_subexpressions(ir::Program& program, const PassContext&) {
  std::map<std::string, std::vector<ir::Node*>> seen;
  std::vector<const ir::Node*> replaced;
  for (const auto& node : program.nodes()) {
    ir::Node* n = node.get();
    if (n->op->has_side_effect || n->is(ir::OpRole::placeholder) || n->is(ir::OpRole::variable))
      continue;
    auto& candidates = seen[key_of(*n)];
    ir::Node* same = nullptr;
    for (ir::Node* c : candidates)
      if (c->attrs == n->attrs) same = c;
    if (!same) {
      candidates.push_back(n);
      continue;
    }
    for (size_t i = 0; i < n->outputs.size(); ++i)
      program.replace_uses({n, int(i)}, {same, int(i)});
    replaced.push_back(n);
  }
  for (const auto* n : replaced) program.erase(n);
}

}  // namespace loom::passes
