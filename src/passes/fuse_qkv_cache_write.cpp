// Folds the decode step's two cache writes into the quantized_qkv_rope node that computes k
// and v. After inplace_state a layer reads
//   q, k, v = quantized_qkv_rope(x, Wq, Wk, Wv, offset)
//   keys    = slice_update_inplace(read(cache.k), reshape*(k), starts)
//   values  = slice_update_inplace(read(cache.v), reshape*(v), starts)
// and this pass makes it one quantized_qkv_rope_cache(cache.k, cache.v, x, ..., starts) whose
// outputs are the two caches' buffers and q: its kernel writes each k and v element into its
// cache window (on a GPU in the GEMV's epilogue), so two launches a layer go. Reshapes keep the
// elements' order, so the window is filled with k's elements in order: the node records the
// update's shape (k_window, v_window) and reads the starts at run time, as
// slice_update_inplace does. Both updates must use the same starts value and the caches be f32
// (the projections' dtype), and k and v have no other reader; otherwise nothing changes.
//
// It runs after inplace_state, whose proof that nothing else reads a cache's old value made
// the slice_update_inplace nodes; the new node writes the same windows of the same variables,
// so that proof carries over. Readers of the updated caches (attention) read the new node's
// outputs, which orders them after it, and the runtime treats both caches as written (they are
// its updated_inputs), so no kernel reads them early under programmatic dependent launch.
#include <algorithm>
#include <unordered_map>
#include <vector>

#include "ir/op_registry.h"
#include "ir/use_lists.h"
#include "loom/error.h"
#include "passes/pass.h"
#include "passes/quantized_gemv_fusion.h"

namespace loom::passes {

namespace {

struct CacheWrite {
  ir::Node* update = nullptr;    // the slice_update_inplace
  std::vector<ir::Node*> chain;  // the reshapes between the fused node and it
  std::vector<int64_t> window;   // the update's static shape
};

}  // namespace

void fuse_qkv_cache_write(ir::Program& program, const PassContext&) {
  const ir::OpRegistry& ops = ir::OpRegistry::instance();
  const ir::OpDef& qkv_op = ops.at("quantized_qkv_rope");
  const ir::OpDef& inplace_op = ops.at("slice_update_inplace");
  const ir::OpDef& reshape_op = ops.at("reshape");
  const ir::OpDef& fused_op = ops.at("quantized_qkv_rope_cache");
  const ir::UseLists uses(program);
  std::unordered_map<const ir::Node*, size_t> position;
  for (const auto& node : program.nodes()) position.emplace(node.get(), position.size());
  auto only_user = [&](ir::Value v) -> ir::Node* {
    if (is_program_output(program, v.node)) return nullptr;
    ir::Node* found = nullptr;
    for (ir::Node* user : uses.users(v.node))
      for (size_t i = 0; i < user->inputs.size(); ++i)
        if (user->inputs[i].node == v.node) {
          if (user->inputs[i].output != v.output) continue;
          if (found && found != user) return nullptr;
          found = user;
        }
    return found;
  };
  // k or v (output `output` of qkv) into a cache through reshapes only, or no update.
  auto cache_write = [&](ir::Node* qkv, int output) {
    CacheWrite w;
    ir::Value v{qkv, output};
    ir::Node* user = only_user(v);
    while (user && user->op == &reshape_op && uses.users(user).size() == 1) {
      w.chain.push_back(user);
      v = {user, 0};
      user = only_user(v);
    }
    if (!user || user->op != &inplace_op || user->inputs.size() != 3 || !(user->inputs[1] == v))
      return CacheWrite{};
    const ir::TensorType& cache = user->type();
    const ir::TensorType& update = v.node->type(v.output);
    // The CUDA kernel indexes windows of rank 4 at most (a KV cache's [B, H, capacity, D]).
    if (cache.dtype != DType::f32 || update.dtype != DType::f32 || !is_static(update.shape) ||
        !is_static(cache.shape) || cache.shape.size() > 4)
      return CacheWrite{};
    w.update = user;
    w.window = static_extents(update.shape);
    return w;
  };

  std::vector<const ir::Node*> erased;
  std::vector<ir::Node*> candidates;
  for (const auto& node : program.nodes())
    if (node->op == &qkv_op) candidates.push_back(node.get());
  for (ir::Node* qkv : candidates) {
    const CacheWrite k = cache_write(qkv, 1);
    const CacheWrite v = cache_write(qkv, 2);
    if (!k.update || !v.update || k.update == v.update) continue;
    const ir::Value starts = k.update->inputs[2];
    if (!(v.update->inputs[2] == starts)) continue;
    // Two different variables (the verifier walks reads to them).
    auto variable_of = [](ir::Value value) {
      while (value.node->is(ir::OpRole::read)) value = value.node->inputs.at(0);
      return value.node;
    };
    ir::Node* k_var = variable_of(k.update->inputs[0]);
    ir::Node* v_var = variable_of(v.update->inputs[0]);
    if (k_var == v_var || !k_var->is(ir::OpRole::variable) || !v_var->is(ir::OpRole::variable))
      continue;
    // The node goes where the later update was: every input is defined by then (the caches'
    // reads and the starts are the updates' inputs, the rest the fused node's). The updates'
    // readers come after both (checked); q's readers that come earlier are reshapes made
    // again after it (fuse_qkv_rope puts q's reshape right after the fused node).
    ir::Node* last = position.at(k.update) > position.at(v.update) ? k.update : v.update;
    const size_t at = position.at(last);
    bool ordered = true;
    for (const ir::Node* update : {k.update, v.update})
      for (const ir::Node* user : uses.users(update)) ordered &= position.at(user) > at;
    std::vector<ir::Node*> early_q_reshapes;
    for (ir::Node* user : uses.users(qkv)) {
      bool reads_q = false;
      for (const auto& in : user->inputs) reads_q |= in.node == qkv && in.output == 0;
      if (!reads_q || position.at(user) > at) continue;
      if (user->op != &reshape_op || is_program_output(program, user)) {
        ordered = false;
        continue;
      }
      for (const ir::Node* reader : uses.users(user)) ordered &= position.at(reader) > at;
      early_q_reshapes.push_back(user);
    }
    if (!ordered || is_program_output(program, qkv)) continue;

    auto node = std::make_unique<ir::Node>();
    node->id = program.next_id();
    node->op = &fused_op;
    node->inputs = {k.update->inputs[0], v.update->inputs[0]};
    for (size_t i = 0; i < 5; ++i) node->inputs.push_back(qkv->inputs[i]);
    node->inputs.push_back(starts);
    if (qkv->inputs.size() > 5) node->inputs.push_back(qkv->inputs[5]);  // norm_weight
    node->attrs = qkv->attrs;
    node->attrs.set("k_window", k.window);
    node->attrs.set("v_window", v.window);
    node->outputs = {k.update->type(), v.update->type(), qkv->type(0)};
    std::vector<ir::TensorType> in_types;
    for (const auto& in : node->inputs) in_types.push_back(in.node->type(in.output));
    const std::string op_name = fused_op.name;
    try {
      if (fused_op.infer(ir::InferContext{op_name, in_types, node->attrs}) != node->outputs)
        continue;
    } catch (const Error&) {
      continue;  // a layout the fused op does not take
    }
    ir::Node* fused = program.insert_before(last, std::move(node));
    for (ir::Node* reshape : early_q_reshapes) {
      auto copy = std::make_unique<ir::Node>();
      copy->id = program.next_id();
      copy->op = &reshape_op;
      copy->inputs = {{fused, 2}};
      copy->attrs = reshape->attrs;
      copy->outputs = reshape->outputs;
      ir::Node* made = program.insert_before(last, std::move(copy));
      program.replace_uses({reshape, 0}, {made, 0});
      erased.push_back(reshape);
    }
    program.replace_uses({qkv, 0}, {fused, 2});
    program.replace_uses({k.update, 0}, {fused, 0});
    program.replace_uses({v.update, 0}, {fused, 1});
    for (const CacheWrite* w : {&k, &v}) {
      erased.push_back(w->update);
      erased.insert(erased.end(), w->chain.begin(), w->chain.end());
    }
    erased.push_back(qkv);
  }
  for (const auto* n : erased) program.erase(n);
}

}  // namespace loom::passes
