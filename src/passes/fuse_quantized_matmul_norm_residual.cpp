// Folds the RMSNorm before a quantized_matmul and the residual add after it into the matmul
// (its optional norm_weight and residual inputs):
//   quantized_matmul(rms_norm(x, g, eps), W)  ->  quantized_matmul(x, W, norm_weight = g)
//   add(quantized_matmul(h, W), r)            ->  quantized_matmul(h, W, residual = r)
// and a gated MLP's SwiGLU, mul(silu(quantized_matmul(x, G)), quantized_matmul(x, W)),
// into one matmul (gate_blocks = G): one GEMV computes both rows and the product.
// In a decode step each is a kernel of a few microseconds on a vector of a few thousand
// elements, as long as the GEMV itself; the GEMV reads x anyway, and the scale of the norm
// is a factor on each output (y = rsqrt(mean(x^2) + eps) * sum_k x_k g_k W_nk), so both
// cost the GEMV almost nothing. A norm read by several matmuls (q, k, v; gate, up) goes into
// each of them, and only when the matmuls are all its users.
//
// On a GPU only rows of x that the GEMV takes (M <= 8, known at compile) are fused: with
// more rows the dequantize-and-GEMM tactic is faster and has no prologue.
#include <cstddef>
#include <string>
#include <unordered_map>
#include <vector>

#include "ir/op_registry.h"
#include "ir/use_lists.h"
#include "passes/pass.h"
#include "passes/quantized_gemv_fusion.h"

namespace loom::passes {

namespace {

// The optional inputs in declared order; a node's inputs hold the given ones in this order.
constexpr const char* kOptional[] = {"has_norm_weight", "has_residual", "has_gate_blocks"};

// The declared slots of a quantized_matmul's inputs: x, blocks, then the optional ones given.
void set_slots(ir::Node& qmm) {
  std::vector<int> slots{0, 1};
  for (int i = 0; i < 3; ++i)
    if (qmm.attrs.get_or<bool>(kOptional[i], false)) slots.push_back(2 + i);
  qmm.input_slots.clear();
  for (size_t i = 0; i < slots.size(); ++i)
    if (slots[i] != int(i)) qmm.input_slots = slots;
}

// Where the optional input number `which` (0 norm, 1 residual, 2 gate) goes among the inputs.
size_t insert_position(const ir::Node& qmm, int which) {
  size_t at = 2;
  for (int i = 0; i < which; ++i) at += qmm.attrs.get_or<bool>(kOptional[i], false);
  return at;
}

bool plain(const ir::Node& qmm) {
  for (const char* flag : kOptional)
    if (qmm.attrs.get_or<bool>(flag, false)) return false;
  return true;
}

void fuse_norms(ir::Program& program, const PassContext& ctx) {
  const ir::OpDef& rms_norm = ir::OpRegistry::instance().at("rms_norm");
  const ir::OpDef& qmm_op = ir::OpRegistry::instance().at("quantized_matmul");
  const ir::UseLists uses(program);
  std::vector<const ir::Node*> fused;
  for (const auto& node : program.nodes()) {
    ir::Node* norm = node.get();
    if (norm->op != &rms_norm || !norm->has_input("weight") || norm->has_input("bias") ||
        is_program_output(program, norm))
      continue;
    const std::vector<ir::Node*>& users = uses.users(norm);
    bool all = !users.empty();
    for (ir::Node* u : users)
      all = all && u->op == &qmm_op && plain(*u) && u->inputs[0].node == norm &&
            u->inputs[1].node != norm && gemv_rows_fit(*u, ctx);
    if (!all) continue;
    const ir::Value x = norm->inputs[0];
    const ir::Value weight = norm->inputs[size_t(norm->find_input("weight"))];
    const double eps = norm->attrs.get<double>("eps");
    for (ir::Node* u : users) {
      u->inputs[0] = x;
      u->inputs.insert(u->inputs.begin() + 2, weight);  // nothing else is given yet
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
          uses.users(qmm).size() != 1 || is_program_output(program, qmm) || residual.node == qmm ||
          !gemv_rows_fit(*qmm, ctx))
        continue;
      // The residual is added as it is: same shape and dtype as y, no broadcasting; and
      // the matmul now reads it, so it must be defined before the matmul.
      if (!(residual.node->type(residual.output) == qmm->type()) || !(add->type() == qmm->type()))
        continue;
      if (position.at(residual.node) > position.at(qmm)) continue;
      qmm->inputs.insert(qmm->inputs.begin() + ptrdiff_t(insert_position(*qmm, 1)), residual);
      qmm->attrs.set("has_residual", true);
      set_slots(*qmm);
      program.replace_uses({add, 0}, {qmm, 0});
      fused.push_back(add);
      break;
    }
  }
  for (const auto* n : fused) program.erase(n);
}

// mul(silu(A), B) with A and B quantized_matmuls of the same x (and norm), format and
// weight shape: the later of A and B becomes quantized_matmul(x, B's blocks, gate_blocks =
// A's blocks) and computes the product; the other, silu and mul go.
void fuse_gates(ir::Program& program, const PassContext& ctx) {
  const ir::OpDef& mul_op = ir::OpRegistry::instance().at("mul");
  const ir::OpDef& silu_op = ir::OpRegistry::instance().at("silu");
  const ir::OpDef& qmm_op = ir::OpRegistry::instance().at("quantized_matmul");
  const ir::UseLists uses(program);
  std::unordered_map<const ir::Node*, size_t> position;
  for (const auto& node : program.nodes()) position.emplace(node.get(), position.size());
  auto single_use = [&](const ir::Node* n) {
    return uses.users(n).size() == 1 && !is_program_output(program, n);
  };
  std::vector<const ir::Node*> fused;
  for (const auto& node : program.nodes()) {
    ir::Node* mul = node.get();
    if (mul->op != &mul_op || mul->inputs.size() != 2) continue;
    for (int side = 0; side < 2; ++side) {
      ir::Node* silu = mul->inputs[size_t(side)].node;
      ir::Node* up = mul->inputs[size_t(1 - side)].node;
      if (silu->op != &silu_op || up->op != &qmm_op || silu == up || !single_use(silu) ||
          !single_use(up))
        continue;
      ir::Node* gate = silu->inputs[0].node;
      if (gate->op != &qmm_op || gate == up || !single_use(gate)) continue;
      // Same x (and norm weight), format, activation rounding and weight shape; no other
      // edge yet; the product's type is the matmul's.
      const bool norm = gate->attrs.get_or<bool>("has_norm_weight", false);
      if (gate->inputs[0] != up->inputs[0] ||
          norm != up->attrs.get_or<bool>("has_norm_weight", false) ||
          (norm && (gate->inputs[2] != up->inputs[2] ||
                    gate->attrs.get<double>("norm_eps") != up->attrs.get<double>("norm_eps"))) ||
          gate->attrs.get<std::string>("format") != up->attrs.get<std::string>("format") ||
          gate->attrs.get_or<bool>("int8_activations", true) !=
              up->attrs.get_or<bool>("int8_activations", true) ||
          gate->attrs.get_or<bool>("has_residual", false) ||
          up->attrs.get_or<bool>("has_residual", false) ||
          up->attrs.get_or<bool>("has_gate_blocks", false) ||
          gate->attrs.get_or<bool>("has_gate_blocks", false))
        continue;
      const ir::Value gate_blocks = gate->inputs[1], up_blocks = up->inputs[1];
      if (!(gate_blocks.node->type(gate_blocks.output) == up_blocks.node->type(up_blocks.output)) ||
          !(mul->type() == up->type()) || !(silu->type() == gate->type()) ||
          !gemv_rows_fit(*up, ctx))
        continue;
      // The later of the two becomes the fused node (every input it reads is then defined
      // before it); the builder may make either first (operand order of `silu(g) * u`).
      const bool gate_later = position.at(gate) > position.at(up);
      ir::Node* target = gate_later ? gate : up;
      target->inputs[1] = up_blocks;
      target->inputs.insert(target->inputs.begin() + ptrdiff_t(insert_position(*target, 2)),
                            gate_blocks);
      target->attrs.set("has_gate_blocks", true);
      set_slots(*target);
      program.replace_uses({mul, 0}, {target, 0});
      fused.push_back(mul);
      fused.push_back(silu);
      fused.push_back(gate_later ? up : gate);
      break;
    }
  }
  for (const auto* n : fused) program.erase(n);
}

}  // namespace

void fuse_quantized_matmul_norm_residual(ir::Program& program, const PassContext& ctx) {
  fuse_norms(program, ctx);
  fuse_gates(program, ctx);
  fuse_residuals(program, ctx);
}

}  // namespace loom::passes
