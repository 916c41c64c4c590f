// Folds the RMSNorm before a quantized_matmul and the residual add after it into the matmul
// (its optional norm_weight and residual inputs):
//   quantized_matmul(rms_norm(x, g, eps), W)  ->  quantized_matmul(x, W, norm_weight = g)
//   add(quantized_matmul(h, W), r)            ->  quantized_matmul(h, W, residual = r)
// In a decode step each is a kernel of a few microseconds on a vector of a few thousand
// elements, as long as the GEMV itself; the GEMV reads x anyway, and the scale of the norm
// is a factor on each output (y = rsqrt(mean(x^2) + eps) * sum_k x_k g_k W_nk), so both
// cost the GEMV almost nothing. A norm read by several matmuls (q, k, v; gate, up) goes into
// each of them, and only when the matmuls are all its users.
//
// On a GPU only rows of x that the GEMV takes (M <= 8, known at compile) are fused: with
// more rows the dequantize-and-GEMM tactic is faster and has no prologue.
#include <unordered_map>

#include "ir/op_registry.h"
#include "ir/use_lists.h"
#include "passes/pass.h"

namespace loom::passes {

namespace {

constexpr int64_t kGemvMaxRows = 8;

bool is_output(const ir::Program& program, const ir::Node* node) {
  for (const auto& out : program.outputs())
    if (out.node == node) return true;
  return false;
}

// Rows of x (the product of all but its last dim) are known and few enough for the GEMV,
// or the device runs every row count through the same kernel.
bool rows_fit(const ir::Node& qmm, const PassContext& ctx) {
  if (ctx.device.kind == DeviceKind::cpu) return true;
  const ir::TensorType& x = qmm.inputs[0].node->type(qmm.inputs[0].output);
  int64_t rows = 1;
  for (size_t d = 0; d + 1 < x.shape.size(); ++d) {
    if (!x.shape[d].is_static()) return false;
    rows *= x.shape[d].value();
  }
  return rows <= kGemvMaxRows;
}

// The declared slots of a quantized_matmul's inputs: x, blocks, then the optional ones given.
void set_slots(ir::Node& qmm) {
  const bool norm = qmm.attrs.get_or<bool>("has_norm_weight", false);
  const bool residual = qmm.attrs.get_or<bool>("has_residual", false);
  qmm.input_slots.clear();
  if (residual && !norm) qmm.input_slots = {0, 1, 3};
}

bool plain(const ir::Node& qmm) {
  return !qmm.attrs.get_or<bool>("has_norm_weight", false) &&
         !qmm.attrs.get_or<bool>("has_residual", false);
}

void fuse_norms(ir::Program& program, const PassContext& ctx) {
  const ir::OpDef& rms_norm = ir::OpRegistry::instance().at("rms_norm");
  const ir::OpDef& qmm_op = ir::OpRegistry::instance().at("quantized_matmul");
  const ir::UseLists uses(program);
  std::vector<const ir::Node*> fused;
  for (const auto& node : program.nodes()) {
    ir::Node* norm = node.get();
    if (norm->op != &rms_norm || !norm->has_input("weight") || norm->has_input("bias") ||
        is_output(program, norm))
      continue;
    const std::vector<ir::Node*>& users = uses.users(norm);
    bool all = !users.empty();
    for (ir::Node* u : users)
      all = all && u->op == &qmm_op && plain(*u) && u->inputs[0].node == norm &&
            u->inputs[1].node != norm && rows_fit(*u, ctx);
    if (!all) continue;
    const ir::Value x = norm->inputs[0];
    const ir::Value weight = norm->inputs[size_t(norm->find_input("weight"))];
    const double eps = norm->attrs.get<double>("eps");
    for (ir::Node* u : users) {
      u->inputs[0] = x;
      u->inputs.insert(u->inputs.begin() + 2, weight);
      u->attrs.set("norm_eps", eps);
      u->attrs.set("has_norm_weight", true);
      set_slots(*u);
    }
    fused.push_back(norm);
  }
  for (const auto* n : fused) program.erase(n);
}

void fuse_residuals(ir::Program& program, const PassContext& ctx) {
  const ir::OpDef& add_op = ir::OpRegistry::instance().at("add");
  const ir::OpDef& qmm_op = ir::OpRegistry::instance().at("quantized_matmul");
  const ir::UseLists uses(program);
  std::unordered_map<const ir::Node*, size_t> position;  // no node is inserted below
  for (const auto& node : program.nodes()) position.emplace(node.get(), position.size());
  std::vector<const ir::Node*> fused;
  for (const auto& node : program.nodes()) {
    ir::Node* add = node.get();
    if (add->op != &add_op || add->inputs.size() != 2) continue;
    for (int side = 0; side < 2; ++side) {
      ir::Node* qmm = add->inputs[size_t(side)].node;
      const ir::Value residual = add->inputs[size_t(1 - side)];
      if (qmm->op != &qmm_op || qmm->attrs.get_or<bool>("has_residual", false) ||
          uses.users(qmm).size() != 1 || is_output(program, qmm) || residual.node == qmm ||
          !rows_fit(*qmm, ctx))
        continue;
      // The residual is added as it is: same shape and dtype as y, no broadcasting; and
      // the matmul now reads it, so it must be defined before the matmul.
      if (!(residual.node->type(residual.output) == qmm->type()) || !(add->type() == qmm->type()))
        continue;
      if (position.at(residual.node) > position.at(qmm)) continue;
      qmm->inputs.push_back(residual);
      qmm->attrs.set("has_residual", true);
      set_slots(*qmm);
      program.replace_uses({add, 0}, {qmm, 0});
      fused.push_back(add);
      break;
    }
  }
  for (const auto* n : fused) program.erase(n);
}

}  // namespace

void fuse_quantized_matmul_norm_residual(ir::Program& program, const PassContext& ctx) {
  fuse_norms(program, ctx);
  fuse_residuals(program, ctx);
}

}  // namespace loom::passes
