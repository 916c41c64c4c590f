// Graph and Tensor: building a computation.
#pragma once

#include <initializer_list>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "loom/attributes.h"
#include "loom/dtype.h"
#include "loom/shape.h"
#include "loom/tensor_data.h"

namespace loom {

namespace ir {
struct Node;
struct OpDef;
class Program;
}  // namespace ir

class Graph;

// A light handle to one output of one node of a graph (like MPSGraphTensor).
class Tensor {
 public:
  Tensor() = default;
  Tensor(std::shared_ptr<ir::Program> program, ir::Node* node, int output)
      : program_(std::move(program)), node_(node), output_(output) {}

  bool defined() const { return node_ != nullptr; }
  const Shape& shape() const;
  DType dtype() const;
  int rank() const { return int(shape().size()); }
  ir::Node* node() const { return node_; }
  int output() const { return output_; }
  const std::shared_ptr<ir::Program>& program() const { return program_; }
  // The node's op name, e.g. "add".
  const std::string& op() const;

 private:
  std::shared_ptr<ir::Program> program_;
  ir::Node* node_ = nullptr;
  int output_ = 0;
};

class Graph {
 public:
  Graph();
  explicit Graph(std::shared_ptr<ir::Program> program) : program_(std::move(program)) {}

  // A value fed at run time under `name`; dims may be symbols ("seq") bound by the feed.
  Tensor placeholder(const std::string& name, Shape shape, DType dtype = DType::f32);
  Tensor constant(TensorData value);
  Tensor constant(double value, DType dtype = DType::f32);
  // A named persistent tensor (weights, KV caches); the result reads its current value.
  // The graph keeps `initial` without a copy, and so does a CPU VariableStore, which never
  // writes it (an assign works on the store's own copy): do not write to its buffer later.
  Tensor variable(const std::string& name, TensorData initial);
  // A variable without a value: a VariableStore supplies it (VariableStore::adopt or
  // declare, before compile() or before the first run); running without it is a
  // loom::Error naming the variable.
  Tensor variable(const std::string& name, Extents shape, DType dtype);
  // Reads a variable's value (same as the tensor `variable` returned).
  Tensor read(const Tensor& variable);
  // Stores `value` into the variable at the end of the run; an assign is always kept.
  void assign(const Tensor& variable, const Tensor& value);

  // Adds a node of a registered op (see loom::op_schema for what each op declares). Checks
  // the attributes against the schema and fills their defaults, checks the inputs' dtypes,
  // infers the outputs; throws loom::Error naming the op and its inputs when they do not fit.
  // Inputs are in declared order; an undefined Tensor stands for an absent optional input,
  // and trailing optional inputs may be left out.
  std::vector<Tensor> add_node(const std::string& op, const std::vector<Tensor>& inputs,
                               Attributes attrs = {});
  // The same with inputs by name: {{"x", x}, {"bias", b}}. A variadic input may be named
  // several times (in order).
  using NamedInputs = std::vector<std::pair<std::string, Tensor>>;
  std::vector<Tensor> add_node(const std::string& op, const NamedInputs& inputs,
                               Attributes attrs = {});
  std::vector<Tensor> add_node(const std::string& op,
                               std::initializer_list<std::pair<std::string, Tensor>> inputs,
                               Attributes attrs = {}) {
    return add_node(op, NamedInputs(inputs), std::move(attrs));
  }
  // A helper for ops with one output: add_node(...).at(0).
  Tensor add_node1(const std::string& op, const std::vector<Tensor>& inputs,
                   Attributes attrs = {}) {
    return add_node(op, inputs, std::move(attrs)).at(0);
  }

  // Textual form of the graph, one node a line.
  std::string dump() const;
  const std::shared_ptr<ir::Program>& program() const { return program_; }

 private:
  // Adds a node without the checks that keep users away from names and internal ops.
  // `slots[i]` is the declared input that inputs[i] is.
  std::vector<Tensor> append_node(const ir::OpDef& def, const std::vector<Tensor>& inputs,
                                  const std::vector<int>& slots, Attributes attrs,
                                  const std::string& name);
  std::vector<Tensor> add_checked_node(const ir::OpDef& def, const std::vector<Tensor>& inputs,
                                       const std::vector<int>& slots, Attributes attrs);

  std::shared_ptr<ir::Program> program_;
};

// The graph a tensor belongs to, for free op functions that add nodes.
Graph graph_of(const Tensor& t);

}  // namespace loom
