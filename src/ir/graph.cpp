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

std::vector<Tensor> Graph::add_node(const std::string& op, const std::vector<Tensor>& inputs,
                                    Attributes attrs) {
  const ir::OpDef& def = ir::OpRegistry::instance().at(op);
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
  Tensor t = add_node1("placeholder", {}, {{"shape", shape}, {"dtype", dtype}});
  t.node()->name = name;
  return t;
}

Tensor Graph::constant(TensorData value) {
  if (!value.defined()) fail(ErrorKind::value, "constant: empty TensorData");
  // A private copy: changing the caller's data later must not change the graph.
  TensorData copy = value.to_host().contiguous();
  if (copy.buffer() == value.buffer()) copy = copy.clone();
  return add_node1("constant", {}, {{"value", copy}});
}

Tensor Graph::constant(double value, DType dtype) {
  return constant(TensorData::scalar(value, dtype));
}

Tensor Graph::variable(const std::string& name, TensorData initial) {
  if (name.empty()) fail(ErrorKind::value, "variable: name must not be empty");
  if (!initial.defined()) fail(ErrorKind::value, "variable '" + name + "': empty initial value");
  if (program_->find_variable(name))
    fail(ErrorKind::value, "variable: a variable named '" + name + "' already exists");
  Tensor t = add_node1("variable", {}, {{"initial", initial.contiguous()}});
  t.node()->name = name;
  return t;
}

static void expect_variable(const Tensor& v, const char* what) {
  if (!v.defined() || v.op() != "variable")
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
