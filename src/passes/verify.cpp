// Checks the IR's invariants: inputs precede their users, every node's recorded types
// match what its op infers, state ops read and write variables (never a constant, a
// placeholder or an intermediate), and the program's outputs are in the program.
#include <set>

#include "ir/op_registry.h"
#include "loom/error.h"
#include "passes/pass.h"

namespace loom::passes {

void verify(ir::Program& program, const PassContext&) {
  std::set<const ir::Node*> seen;
  for (const auto& node : program.nodes()) {
    std::vector<ir::TensorType> types;
    for (const auto& in : node->inputs) {
      if (!seen.count(in.node))
        fail(ErrorKind::internal, "verify: %" + std::to_string(node->id) + " (" + node->op_name() +
                                      ") uses a value defined after it");
      if (in.output < 0 || size_t(in.output) >= in.node->outputs.size())
        fail(ErrorKind::internal, "verify: bad output index into %" + std::to_string(in.node->id));
      types.push_back(in.node->type(in.output));
    }
    ir::InferContext ctx{node->op_name(), types, node->attrs, nullptr};
    auto inferred = node->op->infer(ctx);
    if (inferred.size() != node->outputs.size())
      fail(ErrorKind::internal, "verify: %" + std::to_string(node->id) + " (" + node->op_name() +
                                    ") has the wrong number of outputs");
    for (size_t i = 0; i < inferred.size(); ++i)
      if (inferred[i].dtype != node->outputs[i].dtype ||
          inferred[i].shape.size() != node->outputs[i].shape.size())
        fail(ErrorKind::internal, "verify: %" + std::to_string(node->id) + " (" + node->op_name() +
                                      ") records " + node->outputs[i].str() + " but infers " +
                                      inferred[i].str());
    const int targets = node->is(ir::OpRole::read) ? 1 : node->op->written_inputs();
    for (int i = 0; i < targets; ++i) {
      ir::Value target = node->inputs.at(size_t(i));
      while (target.node->is(ir::OpRole::read) || target.node->is(ir::OpRole::inplace_update))
        target = target.node->inputs.at(size_t(target.node->op->aliased_input(target.output)));
      if (!target.node->is(ir::OpRole::variable))
        fail(ErrorKind::value, "verify: %" + std::to_string(node->id) + " (" + node->op_name() +
                                   ") must target a variable, not " + target.node->op_name());
    }
    if ((node->is(ir::OpRole::variable) || node->is(ir::OpRole::placeholder)) && node->name.empty())
      fail(ErrorKind::value,
           "verify: %" + std::to_string(node->id) + " (" + node->op_name() + ") has no name");
    seen.insert(node.get());
  }
  for (const auto& out : program.outputs())
    if (!seen.count(out.node)) fail(ErrorKind::internal, "verify: an output is not in the program");
}

}  // namespace loom::passes
