// Turns an attention layer's decode-step projections into one quantized_qkv_rope node:
//   q = rope(reshape(quantized_matmul(x, Wq)), offset)
//   k = rope(reshape(quantized_matmul(x, Wk)), offset)
//   v = quantized_matmul(x, Wv)
// with the same x (and folded RMSNorm), format and activation rounding, where each rope's
// rows are one position (its axis -2 has extent 1, as in decode) and the reshapes between
// matmul and rope only regroup the row (so every rope pair lies in one head_dim run of the
// matmul's output). On a GPU the five kernels become one: the GEMV computes the rows of all
// three weights and rotates q and k in its epilogue. Which of the two rotated projections is
// the query does not matter: both are rotated the same way.
#include <initializer_list>
#include <map>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "ir/op_registry.h"
#include "ir/use_lists.h"
#include "loom/quant.h"
#include "passes/pass.h"
#include "passes/quantized_gemv_fusion.h"

namespace loom::passes {

namespace {

bool plain_projection(const ir::Node& qmm) {
  return !qmm.attrs.get_or<bool>("has_residual", false) &&
         !qmm.attrs.get_or<bool>("has_gate_blocks", false) && qmm.type().dtype == DType::f32;
}

// What the three matmuls must share: x, the norm weight (or none) and its epsilon, the
// format, the activation rounding and K.
using Key = std::tuple<ir::Value, ir::Value, double, std::string, bool>;

Key key_of(const ir::Node& qmm) {
  const int norm = qmm.find_input("norm_weight");
  return {qmm.inputs[0], norm >= 0 ? qmm.inputs[size_t(norm)] : ir::Value{},
          qmm.attrs.get_or<double>("norm_eps", 0.0), qmm.attrs.get<std::string>("format"),
          qmm.attrs.get_or<bool>("int8_activations", true)};
}

struct Rotated {
  ir::Node* rope;
  ir::Node* qmm;
  std::vector<ir::Node*> chain;  // the reshapes between them
  int64_t head_dim;
};

// The CUDA kernel's warps work on groups of 4 output rows that never straddle two weights or
// two heads, over blocks of 32 (src/backends/cuda/quantized_matmul.cu).
bool gpu_kernel_takes(const PassContext& ctx, int64_t head_dim,
                      std::initializer_list<const ir::Node*> qmms) {
  if (ctx.device.kind == DeviceKind::cpu) return true;
  const quant::GgufFormat* f =
      quant::find_gguf_format((*qmms.begin())->attrs.get<std::string>("format"));
  if (!f || f->block_size != 32 || head_dim % 4 != 0) return false;
  for (const ir::Node* qmm : qmms) {
    const Dim& n = qmm->type().shape.back();
    if (!n.is_static() || n.value() % 4 != 0) return false;
  }
  return true;
}

bool same_rope(const ir::Node& a, const ir::Node& b) {
  for (const char* name : {"base", "scale"})
    if (a.attrs.get<double>(name) != b.attrs.get<double>(name)) return false;
  return a.attrs.get<bool>("interleaved") == b.attrs.get<bool>("interleaved") &&
         a.attrs.get<int64_t>("dims") == b.attrs.get<int64_t>("dims") && a.inputs[1] == b.inputs[1];
}

}  // namespace

void fuse_qkv_rope(ir::Program& program, const PassContext& ctx) {
  const ir::OpRegistry& ops = ir::OpRegistry::instance();
  const ir::OpDef& qmm_op = ops.at("quantized_matmul");
  const ir::OpDef& rope_op = ops.at("rope");
  const ir::OpDef& reshape_op = ops.at("reshape");
  const ir::OpDef& fused_op = ops.at("quantized_qkv_rope");
  const ir::UseLists uses(program);
  std::unordered_map<const ir::Node*, size_t> position;
  for (const auto& node : program.nodes()) position.emplace(node.get(), position.size());
  auto single_use = [&](const ir::Node* n) {
    return uses.users(n).size() == 1 && !is_program_output(program, n);
  };

  std::map<Key, std::vector<Rotated>> rotated;
  std::map<Key, std::vector<ir::Node*>> plain;
  std::unordered_map<const ir::Node*, bool> in_rotation;
  for (const auto& node : program.nodes()) {
    ir::Node* rope = node.get();
    if (rope->op != &rope_op) continue;
    const ir::TensorType& t = rope->type();
    if (t.dtype != DType::f32 || t.shape.size() < 2 || !t.shape.back().is_static() ||
        !(t.shape[t.shape.size() - 2] == Dim(1)))
      continue;
    Rotated r{rope, nullptr, {}, t.shape.back().value()};
    ir::Value v = rope->inputs[0];
    while (v.node->op == &reshape_op && single_use(v.node)) {
      r.chain.push_back(v.node);
      v = v.node->inputs[0];
    }
    if (v.node->op != &qmm_op || !single_use(v.node) || !plain_projection(*v.node) ||
        !gemv_rows_fit(*v.node, ctx))
      continue;
    r.qmm = v.node;
    in_rotation[r.qmm] = true;
    rotated[key_of(*r.qmm)].push_back(r);
  }
  for (const auto& node : program.nodes()) {
    ir::Node* n = node.get();
    if (n->op == &qmm_op && !in_rotation.count(n) && plain_projection(*n) && gemv_rows_fit(*n, ctx))
      plain[key_of(*n)].push_back(n);
  }

  std::vector<const ir::Node*> erased;
  for (auto& [key, pair] : rotated) {
    auto p = plain.find(key);
    if (pair.size() != 2 || p == plain.end() || p->second.size() != 1) continue;
    const Rotated& q = pair[0];
    const Rotated& k = pair[1];
    ir::Node* v = p->second[0];
    if (q.head_dim != k.head_dim || !same_rope(*q.rope, *k.rope)) continue;
    // The node goes where the last of the three matmuls was: every input is defined by then
    // (the rope offset is checked), and every use of the results comes later (checked).
    ir::Node* last = q.qmm;
    for (ir::Node* n : {k.qmm, v})
      if (position.at(n) > position.at(last)) last = n;
    const size_t at = position.at(last);
    const ir::Value offset = q.rope->inputs[1];
    bool ordered = position.at(offset.node) < at;
    for (const ir::Node* result : {q.rope, k.rope, v})
      for (const ir::Node* user : uses.users(result)) ordered &= position.at(user) > at;
    if (!ordered || is_program_output(program, q.rope) || is_program_output(program, k.rope) ||
        is_program_output(program, v))
      continue;

    auto node = std::make_unique<ir::Node>();
    node->id = program.next_id();
    node->op = &fused_op;
    node->inputs = {q.qmm->inputs[0], q.qmm->inputs[1], k.qmm->inputs[1], v->inputs[1], offset};
    const int norm = q.qmm->find_input("norm_weight");
    if (norm >= 0) node->inputs.push_back(q.qmm->inputs[size_t(norm)]);
    node->attrs.set("format", q.qmm->attrs.get<std::string>("format"));
    node->attrs.set("int8_activations", q.qmm->attrs.get_or<bool>("int8_activations", true));
    node->attrs.set("norm_eps", q.qmm->attrs.get_or<double>("norm_eps", 0.0));
    node->attrs.set("has_norm_weight", norm >= 0);
    node->attrs.set("head_dim", q.head_dim);
    for (const char* name : {"base", "scale"})
      node->attrs.set(name, q.rope->attrs.get<double>(name));
    node->attrs.set("interleaved", q.rope->attrs.get<bool>("interleaved"));
    node->attrs.set("dims", q.rope->attrs.get<int64_t>("dims"));
    node->outputs = {q.qmm->type(), k.qmm->type(), v->type()};
    std::vector<ir::TensorType> in_types;
    for (const auto& in : node->inputs) in_types.push_back(in.node->type(in.output));
    const std::string op_name = fused_op.name;
    if (fused_op.infer(ir::InferContext{op_name, in_types, node->attrs}) != node->outputs)
      continue;  // a shape the fused op does not take (heads not whole, K mismatched)
    if (!gpu_kernel_takes(ctx, q.head_dim, {q.qmm, k.qmm, v})) continue;
    ir::Node* fused = program.insert_before(last, std::move(node));

    // The rotated results in the ropes' shapes: each row's heads in order, so a reshape.
    int output = 0;
    for (const Rotated* r : {&q, &k}) {
      auto reshape = std::make_unique<ir::Node>();
      reshape->id = program.next_id();
      reshape->op = &reshape_op;
      reshape->inputs = {{fused, output++}};
      reshape->attrs = Attributes{{"shape", r->rope->type().shape}};
      reshape->outputs = {r->rope->type()};
      ir::Node* made = program.insert_before(last, std::move(reshape));
      program.replace_uses({r->rope, 0}, {made, 0});
      erased.push_back(r->rope);
      erased.insert(erased.end(), r->chain.begin(), r->chain.end());
      erased.push_back(r->qmm);
    }
    program.replace_uses({v, 0}, {fused, 2});
    erased.push_back(v);
  }
  for (const auto* n : erased) program.erase(n);
}

}  // namespace loom::passes
