// The op registry: one OpDef per op kind, declared once: named inputs, typed attributes with
// defaults, outputs, inference, an optional decomposition, the role and a doc (the public
// part is loom::OpSchema). Nothing else in Loom switches over op kinds.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "ir/node.h"
#include "loom/error.h"
#include "loom/graph.h"
#include "loom/op_schema.h"

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

// Checks that span attributes and inputs (split given both sizes and parts; layer_norm's
// has_weight without a weight) after the defaults are filled; may fill attributes that
// follow from the inputs. `present[i]`: declared input i is given.
using AttrCheckFn =
    std::function<void(const std::string& op, Attributes& attrs, const std::vector<bool>& present)>;

// Builds the op from simpler ops in the same graph: `inputs` in declared order (an undefined
// Tensor for an absent optional input), `attrs` complete. Used by tests, and by a backend
// that lacks the fused kernel.
using DecomposeFn = std::function<std::vector<Tensor>(
    Graph& graph, const std::vector<Tensor>& inputs, const Attributes& attrs)>;

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

const char* op_role_name(OpRole role);

struct OpDef {
  std::string name;
  std::string doc{};  // one line
  int version = 1;
  OpRole role = OpRole::compute;
  // Made only by passes: Graph::add_node refuses it.
  bool internal = false;
  std::vector<InputSpec> inputs{};
  std::vector<AttrSpec> attrs{};
  std::vector<OutputSpec> outputs{};
  InferFn infer{};
  AttrCheckFn check_attrs{};
  DecomposeFn decompose{};
  // Kept by dead-code elimination even when unused (assign, in-place writes).
  bool has_side_effect = false;
  // Output 0 shares the storage of this input: the op moves no bytes (reshape, read).
  int aliases_input = -1;
  // An in-place update writes the variables behind its first `updated_inputs` inputs, and its
  // output i is input i's buffer (i < updated_inputs; aliases_input is 0): slice_update_inplace
  // writes one, quantized_qkv_rope_cache two (the k and v caches of a layer).
  int updated_inputs = 1;
  // Constant folding may evaluate it when all inputs are constants.
  bool foldable = true;
  // A source of values with no kernel: placeholder, constant, variable.
  bool is_source = false;

  // Derived from `inputs` when the op is registered.
  int min_inputs = 0;
  int max_inputs = 0;  // -1: any number

  bool is(OpRole r) const { return role == r; }
  // Declared position of the input called `name`; -1 when there is none.
  int input_index(const std::string& input_name) const;
  const AttrSpec* attr(const std::string& attr_name) const;
  // Writes a variable's buffer (assign, in-place updates).
  bool writes_state() const { return role == OpRole::assign || role == OpRole::inplace_update; }
  // The inputs whose variables a state-writing op writes: assign's input 0, an in-place
  // update's first updated_inputs; 0 for other ops.
  int written_inputs() const {
    return role == OpRole::assign ? 1 : role == OpRole::inplace_update ? updated_inputs : 0;
  }
  // The input whose storage output `output` is; -1 when it has its own.
  int aliased_input(int output) const {
    if (role == OpRole::inplace_update && output < updated_inputs) return output;
    return output == 0 ? aliases_input : -1;
  }
};

class OpRegistry {
 public:
  static OpRegistry& instance();
  void add(OpDef def);
  const OpDef* find(const std::string& name) const;
  // Throws loom::Error(unsupported) for an unknown op.
  const OpDef& at(const std::string& name) const;
  std::vector<std::string> names() const;
  const OpSchema& schema(const std::string& name) const;

 private:
  std::map<std::string, OpDef> ops_;
  std::map<std::string, OpSchema> schemas_;
};

}  // namespace loom::ir

namespace loom::ir {

// Checks `attrs` against `specs` for a node of `op`: unknown names, types (taking int for
// float, int list for shape, dtype names for dtypes), ranges and allowed values; fills the
// defaults. Throws loom::Error(value) or (dtype) with a message that names the op.
void check_attributes(const std::string& op, const std::vector<AttrSpec>& specs, Attributes& attrs);
// Checks the inputs' dtypes against the declared ones; `slots[i]` is input i's declared
// position. Throws loom::Error(dtype).
void check_input_dtypes(const InferContext& ctx, const OpDef& def, const std::vector<int>& slots);

}  // namespace loom::ir
