// The op registry: one OpDef per op kind (inputs, typed attributes, inference, verifier).
// Nothing else in Loom switches over op kinds.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "ir/node.h"
#include "loom/error.h"

namespace loom::ir {

// What an op's inference sees: the input types, the attributes, and (when planning a
// run) the bound symbols. At build time binding is null and dims may be symbols.
struct InferContext {
  const std::string& op;
  const std::vector<TensorType>& inputs;
  const Attributes& attrs;
  const SymbolBinding* binding = nullptr;

  const TensorType& input(size_t i) const { return inputs.at(i); }
  // Replaces bound symbols by their sizes.
  Shape resolve(const Shape& shape) const;
  // Throws loom::Error(kind) "op(f32[2, 3], f32[4]): message".
  [[noreturn]] void fail(ErrorKind kind, const std::string& message) const;
  // Common checks.
  void expect_same_dtype() const;
  void expect_float(size_t input) const;
};

using InferFn = std::function<std::vector<TensorType>(const InferContext&)>;

// What a node of the op is to the runtime and the passes. Code outside the registry asks
// the role instead of comparing op names.
enum class OpRole : uint8_t {
  compute,         // a kernel computes the outputs from the inputs
  placeholder,     // fed at run time
  constant,        // attribute "value", uploaded once
  variable,        // a named persistent tensor in the VariableStore
  read,            // a variable's current value (aliases input 0)
  assign,          // stores input 1 into variable input 0 at the end of the run
  inplace_update,  // writes a window of a variable's buffer during the run (internal)
};

struct OpDef {
  std::string name;
  OpRole role = OpRole::compute;
  // Made only by passes: Graph::add_node refuses it.
  bool internal = false;
  int min_inputs = 0;
  int max_inputs = 0;  // -1: any number
  InferFn infer;
  // Kept by dead-code elimination even when unused (assign, in-place writes).
  bool has_side_effect = false;
  // Output 0 shares the storage of this input: the op moves no bytes (reshape, read).
  int aliases_input = -1;
  // Constant folding may evaluate it when all inputs are constants.
  bool foldable = true;
  // A source of values with no kernel: placeholder, constant, variable.
  bool is_source = false;

  bool is(OpRole r) const { return role == r; }
  // Writes a variable's buffer (assign, in-place updates).
  bool writes_state() const { return role == OpRole::assign || role == OpRole::inplace_update; }
};

class OpRegistry {
 public:
  static OpRegistry& instance();
  void add(OpDef def);
  const OpDef* find(const std::string& name) const;
  // Throws loom::Error(unsupported) for an unknown op.
  const OpDef& at(const std::string& name) const;
  std::vector<std::string> names() const;

 private:
  std::map<std::string, OpDef> ops_;
};

}  // namespace loom::ir
