#include "loom/graph.h"

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

std::vector<Tensor> Graph::add_node(const std::string& op, const std::vector<Tensor>& inputs,
                                    Attributes attrs) {
  const ir::OpDef& def = ir::OpRegistry::instance().at(op);
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
  return append_node(def, inputs, std::move(attrs), "");
}

std::vector<Tensor> Graph::append_node(const ir::OpDef& def, const std::vector<Tensor>& inputs,
                                       Attributes attrs, const std::string& name) {
  const std::string& op = def.name;
  int n = int(inputs.size());
  if (n < def.min_inputs || (def.max_inputs >= 0 && n > def.max_inputs)) {
    std::string expected =
        def.min_inputs == def.max_inputs
            ? std::to_string(def.min_inputs)
            : std::to_string(def.min_inputs) + " to " +
                  (def.max_inputs < 0 ? std::string("any number") : std::to_string(def.max_inputs));
    fail(ErrorKind::value, op + ": takes " + expected + " inputs, got " + std::to_string(n));
  }
  auto node = std::make_unique<ir::Node>();
  node->op = &def;
  std::vector<ir::TensorType> types;
  for (int i = 0; i < n; ++i) {
    const Tensor& t = inputs[size_t(i)];
    if (!t.defined()) fail(ErrorKind::value, op + ": input " + std::to_string(i) + " is undefined");
    if (t.program() != program_)
      fail(ErrorKind::value, op + ": input " + std::to_string(i) + " belongs to another graph");
    node->inputs.push_back({t.node(), t.output()});
    types.push_back(t.node()->type(t.output()));
  }
  ir::InferContext ctx{op, types, attrs, nullptr};
  node->outputs = def.infer(ctx);
  for (const auto& type : node->outputs)
    if (is_static(type.shape)) numel(static_extents(type.shape));  // throws on overflow
  node->attrs = std::move(attrs);
  node->name = name;
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
  return append_node(def, {}, {{"shape", shape}, {"dtype", dtype}}, name).at(0);
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
  return append_node(def, {}, {{"initial", initial.contiguous()}}, name).at(0);
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
