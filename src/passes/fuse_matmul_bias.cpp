// Folds add(matmul(a, b), bias) with a bias of shape [N] into matmul(a, b, bias): backends
// add the bias while they write C (cuBLASLt's bias epilogue), saving a pass over C.
#include <unordered_map>

#include "ir/op_registry.h"
#include "ir/use_lists.h"
#include "passes/pass.h"

namespace loom::passes {

// The matmul that `v` is the only result of, when it can take a bias; else null.
// `uses` was taken before any fusion: a fusion changes the users of the fused matmul only,
// which then has three inputs and is not fusable again.
static ir::Node* fusable_matmul(const ir::Program& program, const ir::UseLists& uses, ir::Value v) {
  static const ir::OpDef& matmul = ir::OpRegistry::instance().at("matmul");
  ir::Node* mm = v.node;
  if (mm->op != &matmul || mm->inputs.size() != 2 || !is_float(mm->type().dtype)) return nullptr;
  if (uses.users(mm).size() != 1) return nullptr;
  for (const auto& out : program.outputs())
    if (out.node == mm) return nullptr;
  return mm;
}

void fuse_matmul_bias(ir::Program& program, const PassContext&) {
  const ir::OpDef& add_op = ir::OpRegistry::instance().at("add");
  std::vector<const ir::Node*> fused;
  const ir::UseLists uses(program);
  std::unordered_map<const ir::Node*, size_t> position;  // no node is inserted below
  for (const auto& node : program.nodes()) position.emplace(node.get(), position.size());
  for (const auto& node : program.nodes()) {
    ir::Node* add = node.get();
    if (add->op != &add_op) continue;
    for (int side = 0; side < 2; ++side) {
      ir::Node* mm = fusable_matmul(program, uses, add->inputs[size_t(side)]);
      if (!mm) continue;
      ir::Value bias = add->inputs[size_t(1 - side)];
      const ir::TensorType& bias_type = bias.node->type(bias.output);
      const ir::TensorType& c = mm->type();
      // Only a bias along N that does not widen C; and the matmul now reads the bias, so
      // the bias must be defined before the matmul.
      if (bias_type.shape.size() != 1 || bias_type.dtype != c.dtype ||
          !(bias_type.shape[0] == c.shape.back()) || !(add->type() == c))
        continue;
      if (position.at(bias.node) > position.at(mm)) continue;
      mm->inputs.push_back(bias);
      program.replace_uses({add, 0}, {mm, 0});
      fused.push_back(add);
      break;
    }
  }
  for (const auto* n : fused) program.erase(n);
}

}  // namespace loom::passes
