#include "ir/node.h"

#include <algorithm>
#include <map>
#include <sstream>

#include "ir/op_registry.h"
#include "loom/error.h"

namespace loom::ir {

std::string TensorType::str() const { return std::string(dtype_name(dtype)) + to_string(shape); }

bool Value::operator<(const Value& o) const {
  if (node != o.node) return node->id < o.node->id;
  return output < o.output;
}

const std::string& Node::op_name() const { return op->name; }
bool Node::is(OpRole role) const { return op->role == role; }

int Node::input_slot(size_t i) const {
  if (!input_slots.empty()) return input_slots.at(i);
  int declared = int(op->inputs.size());
  bool variadic_last = declared > 0 && op->inputs.back().variadic;
  return variadic_last ? std::min(int(i), declared - 1) : int(i);
}

int Node::find_input(const std::string& input_name) const {
  int slot = op->input_index(input_name);
  if (slot < 0) return -1;
  for (size_t i = 0; i < inputs.size(); ++i)
    if (input_slot(i) == slot) return int(i);
  return -1;
}

Node* Program::append(std::unique_ptr<Node> node) {
  if (node->id == 0 && node->op) node->id = next_id();
  nodes_.push_back(std::move(node));
  return nodes_.back().get();
}

Node* Program::insert_before(const Node* position, std::unique_ptr<Node> node) {
  auto it = std::find_if(nodes_.begin(), nodes_.end(),
                         [&](const auto& n) { return n.get() == position; });
  if (it == nodes_.end()) fail(ErrorKind::internal, "insert_before: node not in program");
  return nodes_.insert(it, std::move(node))->get();
}

void Program::erase(const Node* node) {
  auto it =
      std::find_if(nodes_.begin(), nodes_.end(), [&](const auto& n) { return n.get() == node; });
  if (it != nodes_.end()) nodes_.erase(it);
}

void Program::replace_uses(Value from, Value to) {
  for (auto& n : nodes_)
    for (auto& in : n->inputs)
      if (in == from) in = to;
  for (auto& out : outputs_)
    if (out == from) out = to;
}

std::vector<Node*> Program::users(const Node* node) const {
  std::vector<Node*> result;
  for (const auto& n : nodes_)
    for (const auto& in : n->inputs)
      if (in.node == node) {
        result.push_back(n.get());
        break;
      }
  return result;
}

Node* Program::find_placeholder(const std::string& name) const {
  for (const auto& n : nodes_)
    if (n->is(OpRole::placeholder) && n->name == name) return n.get();
  return nullptr;
}

Node* Program::find_variable(const std::string& name) const {
  for (const auto& n : nodes_)
    if (n->is(OpRole::variable) && n->name == name) return n.get();
  return nullptr;
}

std::unique_ptr<Program> Program::clone(std::vector<std::pair<const Node*, Node*>>* map) const {
  auto copy = std::make_unique<Program>();
  std::map<const Node*, Node*> remap;
  for (const auto& n : nodes_) {
    auto c = std::make_unique<Node>(*n);
    for (auto& in : c->inputs) in.node = remap.at(in.node);
    Node* raw = copy->append(std::move(c));
    remap[n.get()] = raw;
    if (map) map->emplace_back(n.get(), raw);
  }
  for (const auto& out : outputs_) copy->outputs_.push_back({remap.at(out.node), out.output});
  copy->next_id_ = next_id_;
  return copy;
}

static std::string value_name(const Value& v) {
  std::string s = "%" + std::to_string(v.node->id);
  if (v.node->outputs.size() > 1) s += ":" + std::to_string(v.output);
  return s;
}

// Small constants show their values so the dump stays readable after folding.
static std::string constant_text(const TensorData& t) {
  if (t.numel() > 8) return "";
  std::ostringstream s;
  s << " value=[";
  auto values = t.to_floats();
  for (size_t i = 0; i < values.size(); ++i) s << (i ? ", " : "") << values[i];
  s << "]";
  return s.str();
}

std::string Program::dump() const {
  std::ostringstream s;
  for (const auto& n : nodes_) {
    if (!n->outputs.empty()) {
      for (size_t i = 0; i < n->outputs.size(); ++i) {
        s << (i ? ", " : "") << value_name({n.get(), int(i)});
      }
      s << " = ";
    }
    s << n->op_name();
    if (!n->name.empty()) s << " \"" << n->name << "\"";
    if (!n->inputs.empty()) {
      s << "(";
      for (size_t i = 0; i < n->inputs.size(); ++i)
        s << (i ? ", " : "") << value_name(n->inputs[i]);
      s << ")";
    }
    Attributes shown;
    for (const auto& [k, v] : n->attrs.items())
      if (k != "value") shown.set(k, v);
    std::string attrs = shown.str();
    if (n->attrs.has("value")) attrs += constant_text(n->attrs.get<TensorData>("value"));
    if (!attrs.empty()) s << " {" << (attrs[0] == ' ' ? attrs.substr(1) : attrs) << "}";
    if (!n->outputs.empty()) {
      s << " : ";
      for (size_t i = 0; i < n->outputs.size(); ++i) s << (i ? ", " : "") << n->outputs[i].str();
    }
    s << "\n";
  }
  if (!outputs_.empty()) {
    s << "outputs:";
    for (const auto& o : outputs_) s << " " << value_name(o);
    s << "\n";
  }
  return s.str();
}

}  // namespace loom::ir
