// IR nodes and programs. A Graph and a compiled Executable each own a Program; nodes are
// kept in a topological order (every input precedes its user).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "loom/attributes.h"
#include "loom/dtype.h"
#include "loom/shape.h"

namespace loom::ir {

struct OpDef;
enum class OpRole : uint8_t;

struct TensorType {
  DType dtype = DType::f32;
  Shape shape;
  bool operator==(const TensorType& o) const { return dtype == o.dtype && shape == o.shape; }
  std::string str() const;  // "f32[seq, 64]"
};

struct Node;

// One output of one node.
struct Value {
  Node* node = nullptr;
  int output = 0;
  bool operator==(const Value& o) const { return node == o.node && output == o.output; }
  bool operator<(const Value& o) const;
};

struct Node {
  int id = 0;  // unique within its program, stable across passes (used by the dump)
  const OpDef* op = nullptr;
  std::vector<Value> inputs;
  Attributes attrs;
  std::vector<TensorType> outputs;
  std::string name;  // placeholder and variable names; empty otherwise
  // The declared input (OpDef::inputs) each input is, where optional inputs are absent;
  // empty when input i is declared input i (or the variadic last one).
  std::vector<int> input_slots;

  const TensorType& type(int output = 0) const { return outputs.at(size_t(output)); }
  // Declared position of input i.
  int input_slot(size_t i) const;
  // Index into `inputs` of the declared input called `name`; -1 when it is absent.
  int find_input(const std::string& input_name) const;
  bool has_input(const std::string& input_name) const { return find_input(input_name) >= 0; }
  const std::string& op_name() const;
  bool is(OpRole role) const;
};

class Program {
 public:
  Program() = default;
  Program(const Program&) = delete;
  Program& operator=(const Program&) = delete;

  // Appends a node; checking its attributes and inferring its outputs is the caller's job
  // (Graph::add_node does both).
  Node* append(std::unique_ptr<Node> node);
  // Inserts before `position` (which must be in the program).
  Node* insert_before(const Node* position, std::unique_ptr<Node> node);
  void erase(const Node* node);
  // Points every use of `from` (node inputs and program outputs) at `to`.
  void replace_uses(Value from, Value to);
  std::vector<Node*> users(const Node* node) const;

  const std::vector<std::unique_ptr<Node>>& nodes() const { return nodes_; }
  std::vector<Value>& outputs() { return outputs_; }
  const std::vector<Value>& outputs() const { return outputs_; }
  int next_id() { return next_id_++; }
  Node* find_placeholder(const std::string& name) const;
  Node* find_variable(const std::string& name) const;

  // Deep copy; `map` receives old node -> new node.
  std::unique_ptr<Program> clone(std::vector<std::pair<const Node*, Node*>>* map = nullptr) const;
  std::string dump() const;

 private:
  std::vector<std::unique_ptr<Node>> nodes_;
  std::vector<Value> outputs_;
  int next_id_ = 0;
};

}  // namespace loom::ir
