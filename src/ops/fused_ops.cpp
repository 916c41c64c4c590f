// The `fused` op: a group of elementwise ops that the fuse_elementwise pass turned into one
// node (internal: only the pass makes it). Its "expression" attribute (ops/fused_expression.h)
// says what it computes per element; its outputs are the group's values that something
// outside the group reads, all of the shape its inputs broadcast to.
#include "ops/fused_expression.h"
#include "ops/op_families.h"
#include "ops/schema_util.h"
#include "ops/shape_inference.h"

namespace loom::ops {

namespace {

std::vector<ir::TensorType> infer_fused(const ir::InferContext& ctx) {
  const FusedExpression e = FusedExpression::parse(ctx.attrs.get<std::string>("expression"));
  std::vector<DType> dtypes;
  for (const auto& in : ctx.inputs) dtypes.push_back(in.dtype);
  e.check(dtypes);
  Shape shape = ctx.input(0).shape;
  for (size_t i = 1; i < ctx.inputs.size(); ++i)
    shape = broadcast_shapes(ctx, shape, ctx.input(i).shape);
  std::vector<ir::TensorType> out;
  for (int step : e.outputs) out.push_back({e.steps[size_t(step)].dtype, shape});
  return out;
}

}  // namespace

void register_fused_ops(ir::OpRegistry& r) {
  r.add({.name = "fused",
         .doc = "Elementwise ops evaluated in one pass (made by the fuse_elementwise pass).",
         .internal = true,
         .inputs = {variadic_input("xs", "the group's inputs, broadcast together",
                                   kNumericOrBoolDTypes)},
         .attrs = {required_attr("expression", AttrType::string,
                                 "steps over inputs xK and literals, then the returned steps")},
         .outputs = {{.name = "ys", .doc = "one per returned step", .variadic = true}},
         .infer = infer_fused,
         .foldable = false});
}

}  // namespace loom::ops
