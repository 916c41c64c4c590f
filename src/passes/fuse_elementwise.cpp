// Groups connected elementwise ops (unary, binary with broadcasting, where, cast, compare)
// of one output shape into one `fused` node whose expression (ops/fused_expression.h) the
// backends evaluate in one pass over memory: the group's intermediates never reach the arena.
// Rank-0 constants become literals of the expression.
//
// Nodes are visited in program order. A node joins the groups of the elementwise producers
// it reads (of its own shape, or one cheap op of a smaller shape read by it alone), merging them,
// as long as each such group is still open: no node outside it has read one of its members yet. So
// every reader of a group comes after the group's last member, where the fused node is put, and the
// program stays in topological order without reordering (a group never gets an input that depends
// on itself). Nothing is computed twice: a member that something outside the group reads (or that
// is a program output) becomes one of the fused node's outputs.
#include <algorithm>
#include <cstring>
#include <map>
#include <unordered_map>

#include "ir/op_registry.h"
#include "ir/use_lists.h"
#include "loom/half.h"
#include "ops/fused_expression.h"
#include "passes/pass.h"

namespace loom::passes {

namespace {

using ops::FusedExpression;
using ops::FusedOperand;

bool known_shape(const Shape& shape) {
  for (const Dim& d : shape)
    if (d == Dim::unknown()) return false;
  return true;
}

bool elementwise_dtype(DType d) {
  if (d == DType::boolean) return true;
  const DTypeInfo& info = dtype_info(d);
  return (info.is_float || info.is_integer) && !info.is_complex && info.bits >= 8;
}

// A rank-0 constant of an elementwise dtype: inlined into expressions as a literal.
bool is_literal(const ir::Value& v) {
  const ir::Node* n = v.node;
  return n->is(ir::OpRole::constant) && n->type().shape.empty() &&
         elementwise_dtype(n->type().dtype) && n->attrs.has("value");
}

FusedOperand literal_of(const ir::Node& constant) {
  FusedOperand a;
  a.kind = FusedOperand::Kind::literal;
  const TensorData value = constant.attrs.get<TensorData>("value").to_host().contiguous();
  a.dtype = value.dtype();
  const void* p = value.data();
  auto read = [p]<class T>(T) {
    T v;
    std::memcpy(&v, p, sizeof v);
    return v;
  };
  switch (a.dtype) {
    case DType::f32:
      a.real = read(float{});
      break;
    case DType::f16:
      a.real = f16_to_float(read(uint16_t{}));
      break;
    case DType::bf16:
      a.real = bf16_to_float(read(uint16_t{}));
      break;
    case DType::boolean:
      a.real = read(uint8_t{}) != 0 ? 1 : 0;
      break;
    case DType::i8:
      a.integer = read(int8_t{});
      break;
    case DType::u8:
      a.integer = read(uint8_t{});
      break;
    case DType::i32:
      a.integer = read(int32_t{});
      break;
    case DType::i64:
      a.integer = read(int64_t{});
      break;
    default:
      fail(ErrorKind::internal,
           "fuse_elementwise: literal of dtype " + std::string(dtype_name(a.dtype)));
  }
  return a;
}

// An elementwise node the pass may put in a group.
bool fusable(const ir::Node& n) {
  if (!n.is(ir::OpRole::compute) || n.op->internal || n.outputs.size() != 1) return false;
  if (!ops::find_fused_op(n.op_name())) return false;
  if (!elementwise_dtype(n.type().dtype) || !known_shape(n.type().shape)) return false;
  bool reads_data = false;  // a node of literals only would give the fused node no input
  for (const auto& in : n.inputs) {
    const ir::TensorType& t = in.node->type(in.output);
    if (!elementwise_dtype(t.dtype) || !known_shape(t.shape)) return false;
    reads_data |= !is_literal(in);
  }
  return reads_data;
}

// A producer of a smaller shape that a node of the group reads may join the group when
// evaluating it once per element of the group's shape costs next to nothing: one cheap
// arithmetic op, alone in its group, read by that node only and not a program output (so it
// never has to be an output of the fused node, whose outputs have the group's shape). This
// takes a reduction's scaled result into the update that reads it (`y * c + s * eps` is one
// kernel, not two); anything larger stays computed once (DifferentShapesStayApart).
bool cheap_broadcast_producer(const ir::Program& program, const ir::UseLists& uses,
                              const ir::Node& producer, const ir::Node& reader) {
  static const char* const kCheap[] = {"add", "sub",  "mul",     "div",
                                       "neg", "cast", "maximum", "minimum"};
  if (std::none_of(std::begin(kCheap), std::end(kCheap),
                   [&](const char* op) { return producer.op_name() == op; }))
    return false;
  const auto& readers = uses.users(&producer);
  if (readers.size() != 1 || readers[0] != &reader) return false;
  for (const auto& out : program.outputs())
    if (out.node == &producer) return false;
  return true;
}

struct Group {
  std::vector<ir::Node*> members;  // in program order
  bool open = true;                // no node outside has read a member yet
  int merged_into = -1;
};

int root(std::vector<Group>& groups, int g) {
  while (groups[size_t(g)].merged_into >= 0) g = groups[size_t(g)].merged_into;
  return g;
}

void replace_group(ir::Program& program, const ir::UseLists& uses,
                   const std::vector<ir::Node*>& members) {
  std::unordered_map<const ir::Node*, int> step_of;
  for (size_t i = 0; i < members.size(); ++i) step_of.emplace(members[i], int(i));
  FusedExpression e;
  std::vector<ir::Value> inputs;
  std::map<ir::Value, int> input_of;
  for (ir::Node* m : members) {
    ops::FusedStep step;
    step.op = ops::find_fused_op(m->op_name())->op;
    step.dtype = m->type().dtype;
    for (const auto& v : m->inputs) {
      FusedOperand a;
      if (auto it = step_of.find(v.node); it != step_of.end()) {
        a.kind = FusedOperand::Kind::step;
        a.index = it->second;
      } else if (is_literal(v)) {
        a = literal_of(*v.node);
      } else {
        auto [it2, fresh] = input_of.emplace(v, int(inputs.size()));
        if (fresh) inputs.push_back(v);
        a.kind = FusedOperand::Kind::input;
        a.index = it2->second;
      }
      step.args.push_back(a);
    }
    e.steps.push_back(std::move(step));
  }
  e.num_inputs = int(inputs.size());
  // Outputs: members read outside the group or returned by the program.
  std::vector<ir::Node*> returned;
  for (ir::Node* m : members) {
    bool outside = false;
    for (const ir::Node* u : uses.users(m)) outside |= !step_of.count(u);
    for (const auto& out : program.outputs()) outside |= out.node == m;
    if (outside) {
      e.outputs.push_back(step_of.at(m));
      returned.push_back(m);
    }
  }
  if (returned.empty()) return;  // dead; dead-code elimination ran before, so not expected

  static const ir::OpDef& fused_op = ir::OpRegistry::instance().at("fused");
  auto node = std::make_unique<ir::Node>();
  node->id = program.next_id();
  node->op = &fused_op;
  node->inputs = inputs;
  node->attrs.set("expression", e.str());
  for (ir::Node* m : returned) node->outputs.push_back(m->type());
  // The op's own inference must agree with the members' types: a disagreement is our bug.
  std::vector<ir::TensorType> in_types;
  for (const auto& v : inputs) in_types.push_back(v.node->type(v.output));
  const std::string op_name = "fused";
  const std::vector<ir::TensorType> inferred =
      fused_op.infer(ir::InferContext{op_name, in_types, node->attrs});
  if (inferred != node->outputs)
    fail(ErrorKind::internal, "fuse_elementwise: the fused node's types disagree with its group's");
  ir::Node* fused = program.insert_before(members.back(), std::move(node));
  for (size_t k = 0; k < returned.size(); ++k)
    program.replace_uses({returned[k], 0}, {fused, int(k)});
  for (ir::Node* m : members) program.erase(m);
}

}  // namespace

void fuse_elementwise(ir::Program& program, const PassContext&) {
  const ir::UseLists readers(program);  // the grouping below changes nothing in the program
  std::vector<Group> groups;
  std::unordered_map<const ir::Node*, int> group_of;  // a node's group (maybe merged since)
  for (const auto& node : program.nodes()) {
    ir::Node* n = node.get();
    int joined = -1;
    if (fusable(*n)) {
      for (const auto& in : n->inputs) {
        auto it = group_of.find(in.node);
        if (it == group_of.end()) continue;
        const int g = root(groups, it->second);
        if (g == joined || !groups[size_t(g)].open) continue;
        if (!(in.node->type().shape == n->type().shape) &&
            !(groups[size_t(g)].members.size() == 1 &&
              cheap_broadcast_producer(program, readers, *in.node, *n)))
          continue;
        if (joined < 0) {
          joined = g;
        } else {  // a second open group: merge it into the first, keeping program order
          auto& into = groups[size_t(joined)].members;
          auto& from = groups[size_t(g)].members;
          into.insert(into.end(), from.begin(), from.end());
          from.clear();
          groups[size_t(g)].merged_into = joined;
        }
      }
      if (joined < 0) {
        joined = int(groups.size());
        groups.push_back({});
      }
      groups[size_t(joined)].members.push_back(n);
      group_of.emplace(n, joined);
    }
    // Any group of an input that n did not join now has a reader outside it.
    for (const auto& in : n->inputs) {
      auto it = group_of.find(in.node);
      if (it == group_of.end()) continue;
      const int g = root(groups, it->second);
      if (g != joined) groups[size_t(g)].open = false;
    }
  }

  std::unordered_map<const ir::Node*, size_t> position;
  for (const auto& node : program.nodes()) position.emplace(node.get(), position.size());
  const ir::UseLists uses(program);
  std::vector<const ir::Node*> literals;
  for (auto& g : groups) {
    if (g.merged_into >= 0 || g.members.size() < 2) continue;
    std::sort(g.members.begin(), g.members.end(),
              [&](const ir::Node* a, const ir::Node* b) { return position[a] < position[b]; });
    for (const ir::Node* m : g.members)
      for (const auto& in : m->inputs)
        if (is_literal(in)) literals.push_back(in.node);
    replace_group(program, uses, g.members);
  }
  // Constants now inlined everywhere they were read are dropped (dead code ran before).
  if (literals.empty()) return;
  const ir::UseLists after(program);
  std::sort(literals.begin(), literals.end());
  literals.erase(std::unique(literals.begin(), literals.end()), literals.end());
  for (const ir::Node* c : literals) {
    bool returned = false;
    for (const auto& out : program.outputs()) returned |= out.node == c;
    if (after.users(c).empty() && !returned) program.erase(c);
  }
}

}  // namespace loom::passes
