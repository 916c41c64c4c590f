// Turns assign(var, slice_update(read(var), update, starts)) into a write of `update`
// into the variable's own buffer. Safe only when nothing else reads the variable's old
// value in the same run: then overwriting the window is indistinguishable from copying
// the whole variable and assigning it back.
#include <map>
#include <set>

#include "ir/op_registry.h"
#include "ir/use_lists.h"
#include "passes/pass.h"

namespace loom::passes {

// The variable node a value reads (through read and other aliasing ops), or null.
static ir::Node* variable_behind(ir::Value v) {
  ir::Node* n = v.node;
  while (n->is(ir::OpRole::read)) n = n->inputs.at(size_t(n->op->aliases_input)).node;
  return n->is(ir::OpRole::variable) ? n : nullptr;
}

// True when every use of the variable's value is the read chain leading to `update` or
// the assign being rewritten.
static bool only_reader(const ir::Program& program, const ir::UseLists& uses, ir::Node* var,
                        const ir::Node* update, const ir::Node* assign) {
  std::vector<ir::Node*> frontier = {var};
  while (!frontier.empty()) {
    ir::Node* n = frontier.back();
    frontier.pop_back();
    for (ir::Node* user : uses.users(n)) {
      if (user == update || user == assign) continue;
      if (user->is(ir::OpRole::read)) {
        frontier.push_back(user);
        continue;
      }
      return false;
    }
  }
  for (const auto& out : program.outputs())
    if (variable_behind(out) == var) return false;
  return true;
}

void update_state_in_place(ir::Program& program, const PassContext&) {
  const ir::OpRegistry& ops = ir::OpRegistry::instance();
  const ir::OpDef& inplace = ops.at("slice_update_inplace");
  const ir::OpDef& slice_update = ops.at("slice_update");
  std::map<const ir::Node*, int> assigns_per_variable;
  for (const auto& n : program.nodes())
    if (n->is(ir::OpRole::assign)) ++assigns_per_variable[n->inputs[0].node];

  std::vector<const ir::Node*> removed;
  const ir::UseLists uses(program);  // the loop changes ops, never inputs
  for (const auto& node : program.nodes()) {
    ir::Node* assign = node.get();
    if (!assign->is(ir::OpRole::assign)) continue;
    ir::Node* var = assign->inputs[0].node;
    ir::Node* update = assign->inputs[1].node;
    if (assigns_per_variable[var] != 1 || update->op != &slice_update) continue;
    if (variable_behind(update->inputs[0]) != var) continue;
    if (!only_reader(program, uses, var, update, assign)) continue;
    update->op = &inplace;
    removed.push_back(assign);
  }
  for (const auto* n : removed) program.erase(n);
}

}  // namespace loom::passes
