#include "loom/graph.h"

#include <algorithm>

#include "ir/node.h"
#include "ir/op_registry.h"
#include "loom/error.h"

namespace loom {

const Shape& Tensor::shape() const {
  if (!node_) fail(ErrorKind::value, "use of an undefined Tensor");
  return node_->type(output_).shape;
}

DType Tensor::dtype() const {
  if (!node_) fail(ErrorKind::value, "use of an undefined Tensor");
  return node_->type(output_).dtype;
}

const std::string& Tensor::op() const {
  if (!node_) fail(ErrorKind::value, "use of an undefined Tensor");
  return node_->op_name();
}

Graph graph_of(const Tensor& t) {
  if (!t.defined()) fail(ErrorKind::value, "use of an undefined Tensor");
  return Graph(t.program());
}

Graph::Graph() : program_(std::make_shared<ir::Program>()) {}

// A constant's value as the graph keeps it: on the host, contiguous, and a private copy, so
// that folding can read it and later changes to the caller's data do not change the graph.
static TensorData private_host_copy(const TensorData& value) {
  TensorData copy = value.to_host().contiguous();
  if (copy.buffer() == value.buffer()) copy = copy.clone();
  return copy;
}

namespace {

// "x, weight?, bias?" for messages.
std::string input_names(const ir::OpDef& def) {
  std::string s;
  for (const auto& in : def.inputs)
    s += (s.empty() ? "" : ", ") + in.name + (in.optional ? "?" : "") + (in.variadic ? "..." : "");
  return s.empty() ? "no inputs" : s;
}

std::string takes(const ir::OpDef& def) {
  std::string count = def.min_inputs == def.max_inputs ? std::to_string(def.min_inputs)
                      : def.max_inputs < 0             ? std::to_string(def.min_inputs) + " or more"
                                                       : std::to_string(def.min_inputs) + " to " +
                                                 std::to_string(def.max_inputs);
  return def.name + ": takes " + count + " inputs (" + input_names(def) + ")";
}

}  // namespace

std::vector<Tensor> Graph::add_node(const std::string& op, const std::vector<Tensor>& inputs,
                                    Attributes attrs) {
  const ir::OpDef& def = ir::OpRegistry::instance().at(op);
  const int declared = int(def.inputs.size());
  const bool variadic_last = declared > 0 && def.inputs.back().variadic;
  std::vector<Tensor> present;
  std::vector<int> slots;
  for (size_t i = 0; i < inputs.size(); ++i) {
    int slot = variadic_last ? std::min(int(i), declared - 1) : int(i);
    if (slot >= declared)
      fail(ErrorKind::value, takes(def) + ", got " + std::to_string(inputs.size()));
    if (!inputs[i].defined()) {
      if (def.inputs[size_t(slot)].optional) continue;
      fail(ErrorKind::value, op + ": input " + std::to_string(i) + " ('" +
                                 def.inputs[size_t(slot)].name + "') is undefined");
    }
    present.push_back(inputs[i]);
    slots.push_back(slot);
  }
  return add_checked_node(def, present, slots, std::move(attrs));
}

std::vector<Tensor> Graph::add_node(const std::string& op, const NamedInputs& inputs,
                                    Attributes attrs) {
  const ir::OpDef& def = ir::OpRegistry::instance().at(op);
  std::vector<std::pair<int, Tensor>> given;
  for (const auto& [name, tensor] : inputs) {
    int slot = def.input_index(name);
    if (slot < 0)
      fail(ErrorKind::value,
           op + ": has no input '" + name + "'; its inputs are " + input_names(def));
    const InputSpec& spec = def.inputs[size_t(slot)];
    if (!tensor.defined()) {
      if (spec.optional) continue;
      fail(ErrorKind::value, op + ": input '" + name + "' is undefined");
    }
    for (const auto& g : given)
      if (g.first == slot && !spec.variadic)
        fail(ErrorKind::value, op + ": input '" + name + "' is given twice");
    given.emplace_back(slot, tensor);
  }
  std::stable_sort(given.begin(), given.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<Tensor> present;
  std::vector<int> slots;
  for (auto& [slot, tensor] : given) {
    present.push_back(tensor);
    slots.push_back(slot);
  }
  return add_checked_node(def, present, slots, std::move(attrs));
}

std::vector<Tensor> Graph::add_checked_node(const ir::OpDef& def, const std::vector<Tensor>& inputs,
                                            const std::vector<int>& slots, Attributes attrs) {
  const std::string& op = def.name;
  if (def.internal)
    fail(ErrorKind::value, op + ": an internal op, made only by the compiler's passes");
  if (def.is(ir::OpRole::placeholder) || def.is(ir::OpRole::variable))
    fail(ErrorKind::value, op + ": needs a name; use Graph::" + op + "(name, ...)");
  if (def.is(ir::OpRole::read) || def.is(ir::OpRole::assign)) {
    bool to_variable =
        !inputs.empty() && inputs[0].defined() && inputs[0].node()->is(ir::OpRole::variable);
    if (!to_variable)
      fail(ErrorKind::value,
           op + ": input 0 must be a variable (made by Graph::variable), not " +
               (inputs.empty() || !inputs[0].defined() ? std::string("nothing") : inputs[0].op()));
  }
  if (def.is(ir::OpRole::constant) && attrs.has("value")) {
    if (const auto* value = std::get_if<TensorData>(&attrs.items().at("value")))
      if (value->defined()) attrs.set("value", private_host_copy(*value));
  }
  return append_node(def, inputs, slots, std::move(attrs), "");
}

std::vector<Tensor> Graph::append_node(const ir::OpDef& def, const std::vector<Tensor>& inputs,
                                       const std::vector<int>& slots, Attributes attrs,
                                       const std::string& name) {
  const std::string& op = def.name;
  const size_t declared = def.inputs.size();
  std::vector<bool> present(declared, false);
  bool positional = true;
  for (size_t i = 0; i < slots.size(); ++i) {
    present.at(size_t(slots[i])) = true;
    bool variadic_last = declared > 0 && def.inputs.back().variadic;
    positional &= slots[i] == (variadic_last ? std::min(int(i), int(declared) - 1) : int(i));
  }
  for (size_t k = 0; k < declared; ++k)
    if (!present[k] && !def.inputs[k].optional)
      fail(ErrorKind::value, takes(def) + "; input '" + def.inputs[k].name + "' is missing");
  auto node = std::make_unique<ir::Node>();
  node->op = &def;
  std::vector<ir::TensorType> types;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& t = inputs[i];
    if (!t.defined()) fail(ErrorKind::value, op + ": input " + std::to_string(i) + " is undefined");
    if (t.program() != program_)
      fail(ErrorKind::value, op + ": input " + std::to_string(i) + " belongs to another graph");
    node->inputs.push_back({t.node(), t.output()});
    types.push_back(t.node()->type(t.output()));
  }
  ir::check_attributes(op, def.attrs, attrs);
  if (def.check_attrs) def.check_attrs(op, attrs, present);
  ir::InferContext ctx{op, types, attrs, nullptr};
  ir::check_input_dtypes(ctx, def, slots);
  node->outputs = def.infer(ctx);
  for (const auto& type : node->outputs)
    if (is_static(type.shape)) numel(static_extents(type.shape));  // throws on overflow
  node->attrs = std::move(attrs);
  node->name = name;
  if (!positional) node->input_slots = slots;
  ir::Node* raw = program_->append(std::move(node));
  std::vector<Tensor> outs;
  for (size_t i = 0; i < raw->outputs.size(); ++i) outs.emplace_back(program_, raw, int(i));
  return outs;
}

Tensor Graph::placeholder(const std::string& name, Shape shape, DType dtype) {
  if (name.empty()) fail(ErrorKind::value, "placeholder: name must not be empty");
  if (program_->find_placeholder(name))
    fail(ErrorKind::value, "placeholder: a placeholder named '" + name + "' already exists");
  Extents known;
  for (const auto& d : shape) {
    if (d.is_static() && d.value() < 0)
      fail(ErrorKind::shape, "placeholder '" + name + "': negative dim in " + to_string(shape));
    if (d.is_static()) known.push_back(d.value());
  }
  numel(known);  // throws when the static dims alone overflow
  const ir::OpDef& def = ir::OpRegistry::instance().at("placeholder");
  return append_node(def, {}, {}, {{"shape", shape}, {"dtype", dtype}}, name).at(0);
}

Tensor Graph::constant(TensorData value) {
  if (!value.defined()) fail(ErrorKind::value, "constant: empty TensorData");
  return add_node1("constant", {}, {{"value", value}});
}

Tensor Graph::constant(double value, DType dtype) {
  return constant(TensorData::scalar(value, dtype));
}

Tensor Graph::variable(const std::string& name, TensorData initial) {
  if (name.empty()) fail(ErrorKind::value, "variable: name must not be empty");
  if (!initial.defined()) fail(ErrorKind::value, "variable '" + name + "': empty initial value");
  if (program_->find_variable(name))
    fail(ErrorKind::value, "variable: a variable named '" + name + "' already exists");
  const ir::OpDef& def = ir::OpRegistry::instance().at("variable");
  return append_node(def, {}, {}, {{"initial", initial.contiguous()}}, name).at(0);
}

Tensor Graph::variable(const std::string& name, Extents shape, DType dtype) {
  if (name.empty()) fail(ErrorKind::value, "variable: name must not be empty");
  if (program_->find_variable(name))
    fail(ErrorKind::value, "variable: a variable named '" + name + "' already exists");
  for (auto e : shape)
    if (e < 0)
      fail(ErrorKind::shape, "variable '" + name + "': negative dim in " + to_string(shape));
  numel(shape);  // throws on overflow
  const ir::OpDef& def = ir::OpRegistry::instance().at("variable");
  return append_node(def, {}, {}, {{"shape", to_shape(shape)}, {"dtype", dtype}}, name).at(0);
}

static void expect_variable(const Tensor& v, const char* what) {
  if (!v.defined() || !v.node()->is(ir::OpRole::variable))
    fail(ErrorKind::value, std::string(what) + ": expected a tensor made by Graph::variable");
}

Tensor Graph::read(const Tensor& variable) {
  expect_variable(variable, "read");
  return add_node1("read", {variable});
}

void Graph::assign(const Tensor& variable, const Tensor& value) {
  expect_variable(variable, "assign");
  add_node("assign", {variable, value});
}

std::string Graph::dump() const { return program_->dump(); }

}  // namespace loom
