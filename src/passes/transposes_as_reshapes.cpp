// A transpose that only moves axes of extent 1 keeps every element at its offset: it is a
// reshape, which aliases its input instead of copying. Decode steps have many ([B, 1, H, D]
// to [B, H, 1, D] around attention); each becomes free.
#include "ir/op_registry.h"
#include "passes/pass.h"

namespace loom::passes {

namespace {

// Whether the axes of extent other than 1 keep their order under `perm`. A symbolic extent
// may be anything, so it counts as not 1.
bool moves_only_unit_axes(const Shape& in, const std::vector<int64_t>& perm) {
  const int64_t rank = int64_t(in.size());
  int64_t last = -1;
  for (int64_t p : perm) {
    if (p < 0) p += rank;
    const Dim& d = in[size_t(p)];
    if (d.is_static() && d.value() == 1) continue;
    if (p < last) return false;
    last = p;
  }
  return true;
}

}  // namespace

void transposes_as_reshapes(ir::Program& program, const PassContext&) {
  const ir::OpDef& transpose = ir::OpRegistry::instance().at("transpose");
  const ir::OpDef& reshape = ir::OpRegistry::instance().at("reshape");
  for (const auto& node : program.nodes()) {
    ir::Node* n = node.get();
    if (n->op != &transpose) continue;
    const ir::TensorType& in = n->inputs[0].node->type(n->inputs[0].output);
    if (!moves_only_unit_axes(in.shape, n->attrs.get<std::vector<int64_t>>("perm"))) continue;
    // Same output type, so the node changes in place and its users stay.
    n->op = &reshape;
    n->attrs = Attributes{{"shape", n->type().shape}};
  }
}

}  // namespace loom::passes
