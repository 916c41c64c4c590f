// Sources of values (placeholder, constant, variable) and variable state (read, assign).
#include "ir/op_registry.h"
#include "ops/op_families.h"
#include "ops/schema_util.h"

namespace loom::ops {

using ir::InferContext;
using ir::TensorType;

static std::vector<TensorType> infer_placeholder(const InferContext& ctx) {
  return {{ctx.attrs.get<DType>("dtype"), ctx.resolve(ctx.attrs.get<Shape>("shape"))}};
}

static std::vector<TensorType> infer_tensor_attr(const InferContext& ctx, const char* attr) {
  const TensorData& t = ctx.attrs.get<TensorData>(attr);
  return {{t.dtype(), to_shape(t.shape())}};
}

// From the initial value, or from shape and dtype for a variable whose value a store
// supplies (Graph::variable(name, shape, dtype)).
static std::vector<TensorType> infer_variable(const InferContext& ctx) {
  if (ctx.attrs.has("initial")) {
    // A package saves a store-supplied variable with its value and keeps shape and dtype.
    auto types = infer_tensor_attr(ctx, "initial");
    if (ctx.attrs.has("dtype") && ctx.attrs.get<DType>("dtype") != types[0].dtype)
      ctx.fail(ErrorKind::dtype, "initial's dtype differs from the dtype attribute");
    if (ctx.attrs.has("shape") && ctx.attrs.get<Shape>("shape") != types[0].shape)
      ctx.fail(ErrorKind::shape, "initial's shape differs from the shape attribute");
    return types;
  }
  if (!ctx.attrs.has("shape") || !ctx.attrs.has("dtype"))
    ctx.fail(ErrorKind::value, "needs initial, or shape and dtype");
  const Shape& shape = ctx.attrs.get<Shape>("shape");
  for (const auto& d : shape)
    if (!d.is_static() || d.value() < 0)
      ctx.fail(ErrorKind::shape,
               "a variable's shape is static and non-negative, not " + to_string(shape));
  return {{ctx.attrs.get<DType>("dtype"), shape}};
}

static std::vector<TensorType> infer_assign(const InferContext& ctx) {
  const TensorType& var = ctx.input(0);
  const TensorType& value = ctx.input(1);
  if (var.dtype != value.dtype)
    ctx.fail(ErrorKind::dtype, "value dtype differs from the variable's");
  bool same = var.shape.size() == value.shape.size();
  for (size_t i = 0; same && i < var.shape.size(); ++i)
    same = var.shape[i] == value.shape[i] || !value.shape[i].is_static();
  if (!same) ctx.fail(ErrorKind::shape, "value shape differs from the variable's");
  return {};
}

void register_source_ops(ir::OpRegistry& r) {
  r.add({.name = "placeholder",
         .doc = "A value fed at run time under the node's name (Graph::placeholder).",
         .role = ir::OpRole::placeholder,
         .attrs = {required_attr("shape", AttrType::shape, "dims may be symbols bound by feeds"),
                   required_attr("dtype", AttrType::dtype, "the fed dtype")},
         .outputs = {output("y", "the fed value")},
         .infer = infer_placeholder,
         .foldable = false,
         .is_source = true});
  r.add({.name = "constant",
         .doc = "A value fixed when the graph is built, uploaded once.",
         .role = ir::OpRole::constant,
         .attrs = {required_attr("value", AttrType::tensor, "the value")},
         .outputs = {output("y", "the value")},
         .infer = [](const InferContext& c) { return infer_tensor_attr(c, "value"); },
         .foldable = false,
         .is_source = true});
  r.add({.name = "variable",
         .doc = "A named persistent tensor in the VariableStore (Graph::variable).",
         .role = ir::OpRole::variable,
         .attrs = {optional_attr("initial", AttrType::tensor, "the value before any assign"),
                   optional_attr("shape", AttrType::shape,
                                 "without initial: the shape (the store supplies the value)"),
                   optional_attr("dtype", AttrType::dtype, "without initial: the dtype")},
         .outputs = {output("v", "the variable")},
         .infer = infer_variable,
         .foldable = false,
         .is_source = true});
  r.add({.name = "read",
         .doc = "A variable's value at the start of the run.",
         .role = ir::OpRole::read,
         .inputs = {input("variable", "made by Graph::variable")},
         .outputs = {output("y", "aliases the variable")},
         .infer = [](const InferContext& c) { return std::vector<TensorType>{c.input(0)}; },
         .aliases_input = 0,
         .foldable = false});
  r.add({.name = "assign",
         .doc = "Stores value into the variable at the end of the run.",
         .role = ir::OpRole::assign,
         .inputs = {input("variable", "made by Graph::variable", {}, "T"),
                    input("value", "the variable's shape", {}, "T")},
         .infer = infer_assign,
         .has_side_effect = true,
         .foldable = false});
}

}  // namespace loom::ops
