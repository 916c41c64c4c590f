// Normalisation: softmax and log_softmax along an axis; layer_norm and rms_norm over the
// last axis with optional per-feature weight (and bias).
#include "ir/op_registry.h"
#include "loom/ops.h"
#include "ops/op_families.h"
#include "ops/shape_inference.h"

namespace loom {

Tensor softmax(const Tensor& x, int64_t axis) {
  return graph_of(x).add_node1("softmax", {x}, Attributes{{"axis", axis}});
}

Tensor log_softmax(const Tensor& x, int64_t axis) {
  return graph_of(x).add_node1("log_softmax", {x}, Attributes{{"axis", axis}});
}

Tensor layer_norm(const Tensor& x, std::optional<Tensor> weight, std::optional<Tensor> bias,
                  double eps) {
  std::vector<Tensor> inputs{x};
  if (weight) inputs.push_back(*weight);
  if (bias) inputs.push_back(*bias);
  return graph_of(x).add_node1(
      "layer_norm", inputs,
      Attributes{{"eps", eps}, {"has_weight", weight.has_value()}, {"has_bias", bias.has_value()}});
}

Tensor rms_norm(const Tensor& x, std::optional<Tensor> weight, double eps) {
  std::vector<Tensor> inputs{x};
  if (weight) inputs.push_back(*weight);
  return graph_of(x).add_node1("rms_norm", inputs, Attributes{{"eps", eps}});
}

namespace ops {
namespace {

std::vector<ir::TensorType> infer_softmax(const ir::InferContext& ctx) {
  ctx.expect_float(0);
  const ir::TensorType& x = ctx.input(0);
  normalize_axes(ctx, {ctx.attrs.get_or<int64_t>("axis", -1)}, int(x.shape.size()), false);
  return {x};
}

// Checks the per-feature parameters (weight, bias) against x [..., D]: same dtype, shape [D].
// Different symbols may still be bound to the same size, so only two static sizes can differ.
void check_feature_params(const ir::InferContext& ctx) {
  const ir::TensorType& x = ctx.input(0);
  if (x.shape.empty()) ctx.fail(ErrorKind::shape, "x needs rank >= 1");
  const Dim& d = x.shape.back();
  for (size_t i = 1; i < ctx.inputs.size(); ++i) {
    const ir::TensorType& p = ctx.input(i);
    if (p.dtype != x.dtype) ctx.fail(ErrorKind::dtype, "weight and bias must have the dtype of x");
    bool size_fits = p.shape.size() == 1 &&
                     (!p.shape[0].is_static() || !d.is_static() || p.shape[0].value() == d.value());
    if (!size_fits)
      ctx.fail(ErrorKind::shape,
               "weight and bias must have shape [" + d.str() + "] (the last dim of x)");
  }
}

void check_eps(const ir::InferContext& ctx) {
  double eps = ctx.attrs.get_or<double>("eps", 0.0);
  if (!(eps >= 0.0)) ctx.fail(ErrorKind::value, "eps must be >= 0");
}

std::vector<ir::TensorType> infer_layer_norm(const ir::InferContext& ctx) {
  ctx.expect_float(0);
  size_t expected = 1 + size_t(ctx.attrs.get_or<bool>("has_weight", false)) +
                    size_t(ctx.attrs.get_or<bool>("has_bias", false));
  if (ctx.inputs.size() != expected)
    ctx.fail(ErrorKind::value,
             "has_weight and has_bias call for " + std::to_string(expected) + " inputs");
  check_eps(ctx);
  check_feature_params(ctx);
  return {ctx.input(0)};
}

std::vector<ir::TensorType> infer_rms_norm(const ir::InferContext& ctx) {
  ctx.expect_float(0);
  check_eps(ctx);
  check_feature_params(ctx);
  return {ctx.input(0)};
}

}  // namespace

void register_norm_ops(ir::OpRegistry& r) {
  r.add({.name = "softmax", .min_inputs = 1, .max_inputs = 1, .infer = infer_softmax});
  r.add({.name = "log_softmax", .min_inputs = 1, .max_inputs = 1, .infer = infer_softmax});
  r.add({.name = "layer_norm", .min_inputs = 1, .max_inputs = 3, .infer = infer_layer_norm});
  r.add({.name = "rms_norm", .min_inputs = 1, .max_inputs = 2, .infer = infer_rms_norm});
}

}  // namespace ops
}  // namespace loom
