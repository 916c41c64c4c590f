// Reductions: sum, mean, max, min over a set of axes, and argmax along one axis.
#include <algorithm>

#include "ir/op_registry.h"
#include "loom/ops.h"
#include "ops/op_families.h"
#include "ops/schema_util.h"
#include "ops/shape_inference.h"

namespace loom {
namespace {

Tensor reduce(const char* op, const Tensor& x, std::vector<int64_t> axes, bool keepdims) {
  return graph_of(x).add_node1(op, {x},
                               Attributes{{"axes", std::move(axes)}, {"keepdims", keepdims}});
}

}  // namespace

Tensor sum(const Tensor& x, std::vector<int64_t> axes, bool keepdims) {
  return reduce("sum", x, std::move(axes), keepdims);
}
Tensor mean(const Tensor& x, std::vector<int64_t> axes, bool keepdims) {
  return reduce("mean", x, std::move(axes), keepdims);
}
Tensor max(const Tensor& x, std::vector<int64_t> axes, bool keepdims) {
  return reduce("max", x, std::move(axes), keepdims);
}
Tensor min(const Tensor& x, std::vector<int64_t> axes, bool keepdims) {
  return reduce("min", x, std::move(axes), keepdims);
}
Tensor argmax(const Tensor& x, int64_t axis, bool keepdims) {
  return graph_of(x).add_node1("argmax", {x}, Attributes{{"axis", axis}, {"keepdims", keepdims}});
}

namespace ops {
namespace {

// Which input dtypes a reduction accepts: packed, complex and bool values have no
// arithmetic order on the CPU kernels, and a mean of integers would have to round.
void check_reduce_dtype(const ir::InferContext& ctx, bool integers_allowed) {
  DType d = ctx.input(0).dtype;
  bool ok = is_float(d) || (integers_allowed && is_integer(d) && !is_packed(d));
  if (!ok)
    ctx.fail(ErrorKind::dtype, std::string(integers_allowed ? "expected a float or integer dtype"
                                                            : "expected a float dtype") +
                                   ", got " + dtype_name(d));
}

// The reduced shape: reduced axes dropped, or kept as 1.
Shape reduced_shape(const Shape& in, const std::vector<int>& axes, bool keepdims) {
  Shape out;
  for (int d = 0; d < int(in.size()); ++d) {
    bool reduced = std::find(axes.begin(), axes.end(), d) != axes.end();
    if (!reduced)
      out.push_back(in[size_t(d)]);
    else if (keepdims)
      out.push_back(Dim(int64_t(1)));
  }
  return out;
}

// max, min and argmax have no value over nothing.
void check_not_empty(const ir::InferContext& ctx, const std::vector<int>& axes) {
  for (int axis : axes) {
    const Dim& d = ctx.input(0).shape[size_t(axis)];
    if (d.is_static() && d.value() == 0)
      ctx.fail(ErrorKind::shape, "cannot reduce over axis " + std::to_string(axis) + " of size 0");
  }
}

ir::InferFn infer_reduce(bool integers_allowed, bool needs_elements) {
  return [=](const ir::InferContext& ctx) -> std::vector<ir::TensorType> {
    check_reduce_dtype(ctx, integers_allowed);
    const ir::TensorType& x = ctx.input(0);
    auto axes =
        normalize_axes(ctx, ctx.attrs.get<std::vector<int64_t>>("axes"), int(x.shape.size()), true);
    if (needs_elements) check_not_empty(ctx, axes);
    bool keepdims = ctx.attrs.get<bool>("keepdims");
    return {{x.dtype, reduced_shape(x.shape, axes, keepdims)}};
  };
}

std::vector<ir::TensorType> infer_argmax(const ir::InferContext& ctx) {
  check_reduce_dtype(ctx, true);
  const ir::TensorType& x = ctx.input(0);
  if (x.shape.empty()) ctx.fail(ErrorKind::shape, "argmax needs rank >= 1");
  auto axes = normalize_axes(ctx, {ctx.attrs.get<int64_t>("axis")}, int(x.shape.size()), false);
  check_not_empty(ctx, axes);
  bool keepdims = ctx.attrs.get<bool>("keepdims");
  return {{DType::i64, reduced_shape(x.shape, axes, keepdims)}};
}

}  // namespace

void register_reduce_ops(ir::OpRegistry& r) {
  const AttrSpec keepdims =
      attr("keepdims", AttrType::boolean, false, "keep reduced axes as size 1");
  auto add_reduce = [&](const char* name, const char* doc, bool integers, bool needs_elements) {
    r.add({.name = name,
           .doc = doc,
           .inputs = {input("x", "values", integers ? kNumericDTypes : kFloatDTypes)},
           .attrs = {attr("axes", AttrType::int_list, std::vector<int64_t>{},
                          "axes reduced over; empty: every axis"),
                     keepdims},
           .outputs = {output("y", "x's dtype")},
           .infer = infer_reduce(integers, needs_elements)});
  };
  add_reduce("sum", "Sum over axes.", true, false);
  add_reduce("mean", "Mean over axes.", false, false);
  add_reduce("max", "Maximum over axes (NaN propagates).", true, true);
  add_reduce("min", "Minimum over axes (NaN propagates).", true, true);
  r.add({.name = "argmax",
         .doc = "Index of the first maximum along axis.",
         .inputs = {input("x", "values", kNumericDTypes)},
         .attrs = {attr("axis", AttrType::integer, op_defaults::argmax_axis, "the axis searched"),
                   keepdims},
         .outputs = {output("indices", "i64")},
         .infer = infer_argmax});
}

}  // namespace ops
}  // namespace loom
