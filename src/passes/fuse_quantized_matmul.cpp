// Rewrites matmul(x, transpose(dequantize(blocks))) — or matmul(x, dequantize(blocks),
// transpose_b) — into quantized_matmul(x, blocks): the kernel reads the blocks, so the
// expanded f32 weight is never made (dead-code elimination drops the dequantize when nothing
// else reads it). Only for f32 x: quantized_matmul gives f32, and matmul keeps x's dtype.
#include "ir/op_registry.h"
#include "passes/pass.h"

namespace loom::passes {

namespace {

// The dequantize node behind matmul's second operand read as Wᵀ; else null.
ir::Node* dequantized_weight(const ir::Node& mm) {
  static const ir::OpDef& dequantize = ir::OpRegistry::instance().at("dequantize");
  static const ir::OpDef& transpose = ir::OpRegistry::instance().at("transpose");
  ir::Node* b = mm.inputs[1].node;
  const bool transpose_b = mm.attrs.get_or<bool>("transpose_b", false);
  if (transpose_b) return b->op == &dequantize ? b : nullptr;
  if (b->op != &transpose ||
      b->attrs.get<std::vector<int64_t>>("perm") != std::vector<int64_t>{1, 0})
    return nullptr;
  ir::Node* d = b->inputs[0].node;
  return d->op == &dequantize ? d : nullptr;
}

}  // namespace

void fuse_quantized_matmul(ir::Program& program, const PassContext&) {
  const ir::OpDef& matmul = ir::OpRegistry::instance().at("matmul");
  const ir::OpDef& quantized = ir::OpRegistry::instance().at("quantized_matmul");
  for (const auto& node : program.nodes()) {
    ir::Node* mm = node.get();
    if (mm->op != &matmul || mm->inputs.size() != 2) continue;
    if (mm->attrs.get_or<bool>("transpose_a", false)) continue;
    if (mm->inputs[0].node->type(mm->inputs[0].output).dtype != DType::f32) continue;
    ir::Node* deq = dequantized_weight(*mm);
    if (!deq) continue;
    // Same output type ([..., M, N] f32), so the node changes in place; its users stay.
    mm->op = &quantized;
    mm->inputs = {mm->inputs[0], deq->inputs[0]};
    mm->attrs = Attributes{{"format", deq->attrs.get<std::string>("format")}};
  }
}

}  // namespace loom::passes
