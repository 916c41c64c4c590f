// Normalisation: softmax and log_softmax along an axis; layer_norm and rms_norm over the
// last axis with optional per-feature weight (and bias).
#include "ir/op_registry.h"
#include "loom/ops.h"
#include "ops/op_families.h"
#include "ops/schema_util.h"
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
  return graph_of(x)
      .add_node("layer_norm", {x, weight.value_or(Tensor()), bias.value_or(Tensor())},
                Attributes{{"eps", eps}})
      .at(0);
}

Tensor rms_norm(const Tensor& x, std::optional<Tensor> weight, double eps) {
  return graph_of(x)
      .add_node("rms_norm", {x, weight.value_or(Tensor())}, Attributes{{"eps", eps}})
      .at(0);
}

namespace ops {
namespace {

std::vector<ir::TensorType> infer_softmax(const ir::InferContext& ctx) {
  ctx.expect_float(0);
  const ir::TensorType& x = ctx.input(0);
  normalize_axes(ctx, {ctx.attrs.get<int64_t>("axis")}, int(x.shape.size()), false);
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

std::vector<ir::TensorType> infer_norm(const ir::InferContext& ctx) {
  ctx.expect_float(0);
  check_feature_params(ctx);
  return {ctx.input(0)};
}

// Decompositions: the same results from simpler ops (the fused kernels accumulate in higher
// precision, so results agree to rounding).
std::vector<Tensor> softmax_parts(Graph&, const std::vector<Tensor>& in, const Attributes& a) {
  int64_t axis = a.get<int64_t>("axis");
  Tensor e = exp(in[0] - max(in[0], {axis}, true));
  return {e / sum(e, {axis}, true)};
}

std::vector<Tensor> log_softmax_parts(Graph&, const std::vector<Tensor>& in, const Attributes& a) {
  int64_t axis = a.get<int64_t>("axis");
  Tensor shifted = in[0] - max(in[0], {axis}, true);
  return {shifted - log(sum(exp(shifted), {axis}, true))};
}

std::vector<Tensor> layer_norm_parts(Graph&, const std::vector<Tensor>& in, const Attributes& a) {
  Tensor centered = in[0] - mean(in[0], {-1}, true);
  Tensor y = centered * rsqrt(mean(centered * centered, {-1}, true) + a.get<double>("eps"));
  if (in.size() > 1 && in[1].defined()) y = y * in[1];
  if (in.size() > 2 && in[2].defined()) y = y + in[2];
  return {y};
}

std::vector<Tensor> rms_norm_parts(Graph&, const std::vector<Tensor>& in, const Attributes& a) {
  Tensor y = in[0] * rsqrt(mean(in[0] * in[0], {-1}, true) + a.get<double>("eps"));
  if (in.size() > 1 && in[1].defined()) y = y * in[1];
  return {y};
}

const InputSpec kFeatureInput =
    input("x", "values; normalised over the last axis D", kFloatDTypes, "T");

AttrSpec eps_attr(double default_eps) {
  return at_least(attr("eps", AttrType::real, default_eps, "added to the variance"), 0.0);
}

}  // namespace

void register_norm_ops(ir::OpRegistry& r) {
  const AttrSpec axis =
      attr("axis", AttrType::integer, op_defaults::softmax_axis, "the axis normalised over");
  r.add({.name = "softmax",
         .doc = "exp(x) / sum(exp(x)) along axis, computed stably.",
         .inputs = {input("x", "values", kFloatDTypes)},
         .attrs = {axis},
         .outputs = {output("y", "x's dtype and shape")},
         .infer = infer_softmax,
         .decompose = softmax_parts});
  r.add({.name = "log_softmax",
         .doc = "x - log(sum(exp(x))) along axis, computed stably.",
         .inputs = {input("x", "values", kFloatDTypes)},
         .attrs = {axis},
         .outputs = {output("y", "x's dtype and shape")},
         .infer = infer_softmax,
         .decompose = log_softmax_parts});
  r.add({.name = "layer_norm",
         .doc = "(x - mean) / sqrt(var + eps) over the last axis, times weight, plus bias.",
         .inputs = {kFeatureInput, optional_input("weight", "[D], multiplies", kFloatDTypes, "T"),
                    optional_input("bias", "[D], added", kFloatDTypes, "T")},
         .attrs = {eps_attr(op_defaults::layer_norm_eps),
                   optional_attr("has_weight", AttrType::boolean,
                                 "whether weight is given (follows from the inputs)"),
                   optional_attr("has_bias", AttrType::boolean,
                                 "whether bias is given (follows from the inputs)")},
         .outputs = {output("y", "x's dtype and shape")},
         .infer = infer_norm,
         .check_attrs = presence_flags(1, {{"has_weight", "weight"}, {"has_bias", "bias"}}),
         .decompose = layer_norm_parts});
  r.add({.name = "rms_norm",
         .doc = "x / sqrt(mean(x^2) + eps) over the last axis, times weight.",
         .inputs = {kFeatureInput, optional_input("weight", "[D], multiplies", kFloatDTypes, "T")},
         .attrs = {eps_attr(op_defaults::rms_norm_eps)},
         .outputs = {output("y", "x's dtype and shape")},
         .infer = infer_norm,
         .decompose = rms_norm_parts});
}

}  // namespace ops
}  // namespace loom
