// Position ops: arange and rope (rotary position embedding).
#include <algorithm>
#include <cmath>
#include <string>

#include "ir/op_registry.h"
#include "loom/ops.h"
#include "ops/op_families.h"
#include "ops/schema_util.h"

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
  double start = ctx.attrs.get<double>("start");
  double stop = ctx.attrs.get<double>("stop");
  double step = ctx.attrs.get<double>("step");
  DType dtype = ctx.attrs.get<DType>("dtype");
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
  double base = ctx.attrs.get<double>("base");
  double scale = ctx.attrs.get<double>("scale");
  if (!(base > 0) || !std::isfinite(base))
    ctx.fail(ErrorKind::value, "base must be positive, got " + std::to_string(base));
  if (!std::isfinite(scale)) ctx.fail(ErrorKind::value, "scale must be finite");
  int64_t dims = ctx.attrs.get<int64_t>("dims");
  if (dims % 2 != 0)
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

// rope from arange, cos, sin, slices and arithmetic, in f32. Needs a static S (arange's
// length); the angles are rounded to f32, so long positions lose precision the fused
// kernel keeps.
std::vector<Tensor> rope_parts(Graph& g, const std::vector<Tensor>& in, const Attributes& a) {
  const Tensor& x = in[0];
  const Shape& shape = x.shape();
  const Dim& s_dim = shape[shape.size() - 2];
  const Dim& d_dim = shape.back();
  if (!s_dim.is_static() || !d_dim.is_static())
    fail(ErrorKind::unsupported,
         "rope's decomposition needs static S and D, got " + to_string(shape));
  const int64_t positions = s_dim.value(), features = d_dim.value();
  int64_t dims = a.get<int64_t>("dims");
  if (dims == 0) dims = features;
  const int64_t half = dims / 2;
  const double base = a.get<double>("base"), scale = a.get<double>("scale");
  std::vector<float> inv_freq(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i)
    inv_freq[size_t(i)] = float(std::exp(-double(2 * i) / double(dims) * std::log(base)));
  Tensor offset = cast(reshape(in[1], Shape{1}), DType::f32);
  Tensor position = (offset + arange(g, 0, double(positions), 1, DType::f32)) * scale;
  Tensor angles = reshape(position, Shape{positions, 1}) *
                  g.constant(TensorData::from_floats(inv_freq, DType::f32, {1, half}));
  Tensor cos_a = cos(angles), sin_a = sin(angles);  // [S, half]
  Tensor xf = cast(x, DType::f32);
  Tensor first, second;  // the two members of each rotated pair
  Shape pair_shape = shape;
  if (a.get<bool>("interleaved")) {
    pair_shape.back() = Dim(half);
    pair_shape.push_back(Dim(int64_t(2)));
    Tensor pairs = reshape(slice(xf, {-1}, {0}, {dims}), pair_shape);
    first = reshape(slice(pairs, {-1}, {0}, {1}), Shape(pair_shape.begin(), pair_shape.end() - 1));
    second = reshape(slice(pairs, {-1}, {1}, {2}), Shape(pair_shape.begin(), pair_shape.end() - 1));
  } else {
    first = slice(xf, {-1}, {0}, {half});
    second = slice(xf, {-1}, {half}, {dims});
  }
  Tensor y_first = first * cos_a - second * sin_a;
  Tensor y_second = first * sin_a + second * cos_a;
  Tensor rotated;
  if (a.get<bool>("interleaved")) {
    Shape column = pair_shape;
    column.back() = Dim(int64_t(1));
    Shape rows = shape;
    rows.back() = Dim(dims);
    rotated = reshape(concat({reshape(y_first, column), reshape(y_second, column)}, -1), rows);
  } else {
    rotated = concat({y_first, y_second}, -1);
  }
  if (dims < features) rotated = concat({rotated, slice(xf, {-1}, {dims}, {features})}, -1);
  return {cast(rotated, x.dtype())};
}

}  // namespace

void register_position_ops(ir::OpRegistry& r) {
  r.add({.name = "arange",
         .doc = "start, start + step, ... below stop.",
         .attrs = {attr("start", AttrType::real, op_defaults::arange_start, "the first value"),
                   required_attr("stop", AttrType::real, "the end, excluded"),
                   attr("step", AttrType::real, op_defaults::arange_step, "not zero"),
                   attr("dtype", AttrType::dtype, op_defaults::arange_dtype,
                        "a float or integer dtype")},
         .outputs = {output("y", "1-D, of dtype")},
         .infer = infer_arange});
  r.add({.name = "rope",
         .doc = "Rotary position embedding of x [..., S, D]; row s at (offset + s) * scale.",
         .inputs = {input("x", "[..., S, D]", kFloatDTypes),
                    input("offset", "position of row 0: shape [] or [1], read at run time",
                          kIndexDTypes)},
         .attrs = {attr("base", AttrType::real, op_defaults::rope_base, "frequency base, > 0"),
                   attr("interleaved", AttrType::boolean, op_defaults::rope_interleaved,
                        "rotate pairs (2i, 2i+1); else (i, i + dims/2)"),
                   at_least(attr("dims", AttrType::integer, op_defaults::rope_dims,
                                 "rotate the first dims features (even); 0: all"),
                            0),
                   attr("scale", AttrType::real, op_defaults::rope_scale, "position multiplier")},
         .outputs = {output("y", "x's dtype and shape")},
         .infer = infer_rope,
         .decompose = rope_parts});
}

}  // namespace loom::ops
