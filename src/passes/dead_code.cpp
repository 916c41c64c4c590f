// Removes nodes whose values reach no output and no side effect (assign).
#include <set>

#include "ir/op_registry.h"
#include "passes/pass.h"

namespace loom::passes {

void eliminate_dead_code(ir::Program& program, const PassContext&) {
  std::set<const ir::Node*> live;
  for (const auto& out : program.outputs()) live.insert(out.node);
  const auto& nodes = program.nodes();
  for (auto it = nodes.rbegin(); it != nodes.rend(); ++it) {
    const ir::Node* n = it->get();
    if (n->op->has_side_effect) live.insert(n);
    if (!live.count(n)) continue;
    for (const auto& in : n->inputs) live.insert(in.node);
  }
  std::vector<const ir::Node*> dead;
  for (const auto& n : nodes)
    if (!live.count(n.get())) dead.push_back(n.get());
  for (const auto* n : dead) program.erase(n);
}

}  // namespace loom::passes
