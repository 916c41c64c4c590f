// Sources of values (placeholder, constant, variable) and variable state (read, assign).
#include "ir/op_registry.h"
#include "ops/op_families.h"

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
         .role = ir::OpRole::placeholder,
         .infer = infer_placeholder,
         .foldable = false,
         .is_source = true});
  r.add({.name = "constant",
         .role = ir::OpRole::constant,
         .infer = [](const InferContext& c) { return infer_tensor_attr(c, "value"); },
         .foldable = false,
         .is_source = true});
  r.add({.name = "variable",
         .role = ir::OpRole::variable,
         .infer = [](const InferContext& c) { return infer_tensor_attr(c, "initial"); },
         .foldable = false,
         .is_source = true});
  r.add({.name = "read",
         .role = ir::OpRole::read,
         .min_inputs = 1,
         .max_inputs = 1,
         .infer = [](const InferContext& c) { return std::vector<TensorType>{c.input(0)}; },
         .aliases_input = 0,
         .foldable = false});
  r.add({.name = "assign",
         .role = ir::OpRole::assign,
         .min_inputs = 2,
         .max_inputs = 2,
         .infer = infer_assign,
         .has_side_effect = true,
         .foldable = false});
}

}  // namespace loom::ops
