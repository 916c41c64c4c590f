// Position ops: arange and rope (rotary position embedding).
#include <algorithm>
#include <cmath>
#include <string>

#include "ir/op_registry.h"
#include "loom/ops.h"
#include "ops/op_families.h"

namespace loom {

Tensor arange(Graph& g, double start, double stop, double step, DType dtype) {
  return g.add_node1(
      "arange", {}, Attributes{{"start", start}, {"stop", stop}, {"step", step}, {"dtype", dtype}});
}

Tensor rope(const Tensor& x, const Tensor& offset, RopeOptions options) {
  return graph_of(x).add_node1("rope", {x, offset},
                               Attributes{{"base", options.base},
                                          {"interleaved", options.interleaved},
                                          {"dims", options.dims},
                                          {"scale", options.scale}});
}

}  // namespace loom

namespace loom::ops {

namespace {

using ir::InferContext;
using ir::TensorType;

// Larger lengths are a mistake (a tiny step), not a tensor anyone can hold.
constexpr double kMaxArangeLength = double(int64_t(1) << 40);

std::vector<TensorType> infer_arange(const InferContext& ctx) {
  double start = ctx.attrs.get_or<double>("start", 0.0);
  double stop = ctx.attrs.get<double>("stop");
  double step = ctx.attrs.get_or<double>("step", 1.0);
  DType dtype = ctx.attrs.get_or<DType>("dtype", DType::i64);
  const DTypeInfo& info = dtype_info(dtype);
  if (!(info.is_float || info.is_integer) || is_packed(dtype))
    ctx.fail(ErrorKind::dtype,
             std::string("arange makes float or integer values, not ") + info.name);
  if (!std::isfinite(start) || !std::isfinite(stop) || !std::isfinite(step))
    ctx.fail(ErrorKind::value, "start, stop and step must be finite");
  if (step == 0) ctx.fail(ErrorKind::value, "step must not be zero");
  double length = std::ceil((stop - start) / step);
  if (!(length <= kMaxArangeLength))
    ctx.fail(ErrorKind::value, "arange(" + std::to_string(start) + ", " + std::to_string(stop) +
                                   ", " + std::to_string(step) + ") is too long");
  return {TensorType{dtype, {Dim(int64_t(std::max(length, 0.0)))}}};
}

std::vector<TensorType> infer_rope(const InferContext& ctx) {
  ctx.expect_float(0);
  const TensorType& x = ctx.input(0);
  const TensorType& offset = ctx.input(1);
  if (offset.dtype != DType::i32 && offset.dtype != DType::i64)
    ctx.fail(ErrorKind::dtype,
             std::string("offset must be i32 or i64, got ") + dtype_name(offset.dtype));
  bool scalar = offset.shape.empty() ||
                (offset.shape.size() == 1 && (offset.shape[0].is_symbol() || offset.shape[0] == 1));
  if (!scalar)
    ctx.fail(ErrorKind::shape, "offset must have shape [] or [1], got " + to_string(offset.shape));
  if (x.shape.size() < 2) ctx.fail(ErrorKind::shape, "x must be [..., S, D]");
  double base = ctx.attrs.get_or<double>("base", 10000.0);
  double scale = ctx.attrs.get_or<double>("scale", 1.0);
  if (!(base > 0) || !std::isfinite(base))
    ctx.fail(ErrorKind::value, "base must be positive, got " + std::to_string(base));
  if (!std::isfinite(scale)) ctx.fail(ErrorKind::value, "scale must be finite");
  int64_t dims = ctx.attrs.get_or<int64_t>("dims", 0);
  if (dims < 0 || dims % 2 != 0)
    ctx.fail(ErrorKind::value, "dims must be even and >= 0, got " + std::to_string(dims));
  const Dim& d = x.shape.back();
  if (d.is_static()) {
    if (dims > d.value())
      ctx.fail(ErrorKind::shape,
               "dims " + std::to_string(dims) + " exceeds the feature size " + d.str());
    if (dims == 0 && d.value() % 2 != 0)
      ctx.fail(ErrorKind::shape, "rotating all " + d.str() + " features needs an even count");
  }
  return {x};
}

}  // namespace

void register_position_ops(ir::OpRegistry& r) {
  r.add({.name = "arange", .min_inputs = 0, .max_inputs = 0, .infer = infer_arange});
  r.add({.name = "rope", .min_inputs = 2, .max_inputs = 2, .infer = infer_rope});
}

}  // namespace loom::ops
