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
         .attrs = {required_attr("initial", AttrType::tensor, "the value before any assign")},
         .outputs = {output("v", "the variable")},
         .infer = [](const InferContext& c) { return infer_tensor_attr(c, "initial"); },
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
