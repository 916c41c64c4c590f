// Slice ops: slice, dynamic_slice, slice_update (and its in-place form), gather.
#include <algorithm>
#include <limits>
#include <string>

#include "ir/op_registry.h"
#include "loom/ops.h"
#include "ops/op_families.h"
#include "ops/schema_util.h"
#include "ops/shape_inference.h"

namespace loom {

Tensor slice(const Tensor& x, std::vector<int64_t> axes, std::vector<int64_t> starts,
             std::vector<int64_t> stops, std::vector<int64_t> steps) {
  return graph_of(x).add_node1("slice", {x},
                               Attributes{{"axes", std::move(axes)},
                                          {"starts", std::move(starts)},
                                          {"stops", std::move(stops)},
                                          {"steps", std::move(steps)}});
}

Tensor slice(const Tensor& x, const Tensor& starts, std::vector<int64_t> axes,
             std::vector<int64_t> sizes) {
  return graph_of(x).add_node1("dynamic_slice", {x, starts},
                               Attributes{{"axes", std::move(axes)}, {"sizes", std::move(sizes)}});
}

Tensor slice_update(const Tensor& x, const Tensor& update, const Tensor& starts) {
  return graph_of(x).add_node1("slice_update", {x, update, starts});
}

Tensor slice_update(const Tensor& x, const Tensor& update, std::vector<int64_t> starts) {
  Graph g = graph_of(x);
  int64_t n = int64_t(starts.size());
  Tensor starts_tensor = g.constant(TensorData::from_vector(starts, {n}));
  return g.add_node1("slice_update", {x, update, starts_tensor});
}

Tensor gather(const Tensor& table, const Tensor& indices, int64_t axis) {
  return graph_of(table).add_node1("gather", {table, indices}, Attributes{{"axis", axis}});
}

}  // namespace loom

namespace loom::ops {

namespace {

using ir::InferContext;
using ir::TensorType;

std::string list_str(const std::vector<int64_t>& v) {
  return to_string(Extents(v.begin(), v.end()));
}

void expect_index_dtype(const InferContext& ctx, size_t input, const char* what) {
  DType d = ctx.input(input).dtype;
  if (d != DType::i32 && d != DType::i64)
    ctx.fail(ErrorKind::dtype, std::string(what) + " must be i32 or i64, got " + dtype_name(d));
}

// `what` must be a vector of exactly `n` entries: shape [n].
void expect_vector_of(const InferContext& ctx, size_t input, int64_t n, const char* what) {
  const Shape& s = ctx.input(input).shape;
  // A symbolic length is checked again once the symbols are bound.
  bool fits = s.size() == 1 && (s[0].is_symbol() || s[0].value() == n);
  if (!fits)
    ctx.fail(ErrorKind::shape, std::string(what) + " must have shape [" + std::to_string(n) +
                                   "], got " + to_string(s));
}

// Each axis normalised, in the given order (normalize_axes checks range and repeats, but
// sorts, and here axis i pairs with start i).
std::vector<int> axes_in_order(const InferContext& ctx, const std::vector<int64_t>& axes,
                               int rank) {
  normalize_axes(ctx, axes, rank, false);
  std::vector<int> out;
  for (int64_t a : axes) out.push_back(int(a < 0 ? a + rank : a));
  return out;
}

// Length of x[start:stop:step] over a dim of `dim` (python semantics; step > 0).
int64_t slice_length(int64_t dim, int64_t start, int64_t stop, int64_t step) {
  auto clamp = [dim](int64_t i) { return std::clamp(i < 0 ? i + dim : i, int64_t(0), dim); };
  int64_t b = clamp(start), e = clamp(stop);
  return e > b ? (e - b - 1) / step + 1 : 0;
}

std::vector<TensorType> infer_slice(const InferContext& ctx) {
  const TensorType& x = ctx.input(0);
  int rank = int(x.shape.size());
  auto axes = ctx.attrs.get<std::vector<int64_t>>("axes");
  auto starts = ctx.attrs.get<std::vector<int64_t>>("starts");
  auto stops = ctx.attrs.get<std::vector<int64_t>>("stops");
  auto steps = ctx.attrs.get<std::vector<int64_t>>("steps");
  size_t n = starts.size();
  if (stops.size() != n)
    ctx.fail(ErrorKind::value,
             "starts " + list_str(starts) + " and stops " + list_str(stops) + " differ in length");
  if (axes.empty()) {  // the leading axes, as ONNX does
    if (int(n) > rank)
      ctx.fail(ErrorKind::shape, std::to_string(n) + " starts for rank " + std::to_string(rank));
    for (size_t i = 0; i < n; ++i) axes.push_back(int64_t(i));
  }
  if (steps.empty()) steps.assign(n, 1);
  if (axes.size() != n || steps.size() != n)
    ctx.fail(ErrorKind::value, "axes " + list_str(axes) + ", starts " + list_str(starts) +
                                   ", stops and steps " + list_str(steps) +
                                   " must have one entry per sliced axis");
  std::vector<int> axis = axes_in_order(ctx, axes, rank);
  Shape out = x.shape;
  for (size_t i = 0; i < n; ++i) {
    if (steps[i] <= 0) ctx.fail(ErrorKind::value, "steps must be positive, got " + list_str(steps));
    Dim& d = out[size_t(axis[i])];
    if (d.is_static()) {
      d = Dim(slice_length(d.value(), starts[i], stops[i], steps[i]));
    } else {
      // x[0:] keeps a symbolic dim; anything else is known once the symbol is bound.
      bool whole =
          starts[i] == 0 && stops[i] >= std::numeric_limits<int32_t>::max() && steps[i] == 1;
      if (!whole) d = Dim::unknown();
    }
  }
  return {TensorType{x.dtype, out}};
}

std::vector<TensorType> infer_dynamic_slice(const InferContext& ctx) {
  const TensorType& x = ctx.input(0);
  int rank = int(x.shape.size());
  const auto& axes = ctx.attrs.get<std::vector<int64_t>>("axes");
  const auto& sizes = ctx.attrs.get<std::vector<int64_t>>("sizes");
  if (axes.size() != sizes.size())
    ctx.fail(ErrorKind::value,
             "axes " + list_str(axes) + " and sizes " + list_str(sizes) + " differ in length");
  expect_index_dtype(ctx, 1, "starts");
  expect_vector_of(ctx, 1, int64_t(axes.size()), "starts");
  std::vector<int> axis = axes_in_order(ctx, axes, rank);
  Shape out = x.shape;
  for (size_t i = 0; i < axes.size(); ++i) {
    Dim& d = out[size_t(axis[i])];
    if (sizes[i] < 0)
      ctx.fail(ErrorKind::value, "sizes " + list_str(sizes) + " has a negative size");
    if (d.is_static() && sizes[i] > d.value())
      ctx.fail(ErrorKind::shape, "size " + std::to_string(sizes[i]) + " exceeds axis " +
                                     std::to_string(axis[i]) + " of size " + d.str());
    d = Dim(sizes[i]);
  }
  return {TensorType{x.dtype, out}};
}

std::vector<TensorType> infer_slice_update(const InferContext& ctx) {
  const TensorType& x = ctx.input(0);
  const TensorType& update = ctx.input(1);
  if (update.dtype != x.dtype)
    ctx.fail(ErrorKind::dtype, std::string("update dtype ") + dtype_name(update.dtype) +
                                   " differs from " + dtype_name(x.dtype));
  expect_index_dtype(ctx, 2, "starts");
  if (update.shape.size() != x.shape.size())
    ctx.fail(ErrorKind::shape, "update rank " + std::to_string(update.shape.size()) +
                                   " differs from rank " + std::to_string(x.shape.size()));
  for (size_t d = 0; d < x.shape.size(); ++d) {
    const Dim& u = update.shape[d];
    const Dim& xd = x.shape[d];
    if (u.is_static() && xd.is_static() && u.value() > xd.value())
      ctx.fail(ErrorKind::shape, "update is larger than x on axis " + std::to_string(d));
  }
  expect_vector_of(ctx, 2, int64_t(x.shape.size()), "starts");
  return {x};
}

std::vector<TensorType> infer_gather(const InferContext& ctx) {
  const TensorType& table = ctx.input(0);
  const TensorType& indices = ctx.input(1);
  expect_index_dtype(ctx, 1, "indices");
  int rank = int(table.shape.size());
  if (rank == 0) ctx.fail(ErrorKind::shape, "table must have rank >= 1");
  int axis = normalize_axes(ctx, {ctx.attrs.get<int64_t>("axis")}, rank, false).at(0);
  Shape out(table.shape.begin(), table.shape.begin() + axis);
  out.insert(out.end(), indices.shape.begin(), indices.shape.end());
  out.insert(out.end(), table.shape.begin() + axis + 1, table.shape.end());
  return {TensorType{table.dtype, out}};
}

}  // namespace

void register_slice_ops(ir::OpRegistry& r) {
  const std::vector<int64_t> none;
  r.add({.name = "slice",
         .doc = "x[start:stop:step] along axes (Python semantics: negative and clamped bounds).",
         .inputs = {input("x", "values", kByteDTypes)},
         .attrs = {attr("axes", AttrType::int_list, none, "sliced axes; empty: the leading ones"),
                   required_attr("starts", AttrType::int_list, "one per sliced axis"),
                   required_attr("stops", AttrType::int_list, "one per sliced axis, excluded"),
                   attr("steps", AttrType::int_list, none, "one per sliced axis, > 0; empty: 1")},
         .outputs = {output("y", "x's dtype")},
         .infer = infer_slice});
  r.add({.name = "dynamic_slice",
         .doc = "A window of sizes along axes at run-time starts, clamped to stay inside x.",
         .inputs = {input("x", "values", kByteDTypes),
                    input("starts", "[len(axes)], read at run time", kIndexDTypes)},
         .attrs = {required_attr("axes", AttrType::int_list, "the sliced axes"),
                   required_attr("sizes", AttrType::int_list, "window size per axis")},
         .outputs = {output("y", "x's dtype")},
         .infer = infer_dynamic_slice});
  const std::vector<InputSpec> update_inputs{
      input("x", "values", kByteDTypes, "T"),
      input("update", "the window's new values", kByteDTypes, "T"),
      input("starts", "[rank of x], read at run time and clamped", kIndexDTypes)};
  r.add({.name = "slice_update",
         .doc = "x with the window at starts replaced by update.",
         .inputs = update_inputs,
         .outputs = {output("y", "x's dtype and shape")},
         .infer = infer_slice_update});
  // The in-place pass rewrites slice_update into this form: its output is the variable's
  // buffer (input 0), and its kernel writes only the window.
  r.add({.name = "slice_update_inplace",
         .doc = "slice_update written into the variable's buffer (made by the inplace_state pass).",
         .role = ir::OpRole::inplace_update,
         .internal = true,
         .inputs = update_inputs,
         .outputs = {output("y", "aliases x")},
         .infer = infer_slice_update,
         .has_side_effect = true,
         .aliases_input = 0});
  r.add({.name = "gather",
         .doc = "Entries of table picked by integer indices along axis; out of range gives 0.",
         .inputs = {input("table", "values", kByteDTypes),
                    input("indices", "any shape", kIndexDTypes)},
         .attrs = {attr("axis", AttrType::integer, op_defaults::gather_axis, "the axis indexed")},
         .outputs = {output("y", "table.shape[:axis] + indices.shape + table.shape[axis+1:]")},
         .infer = infer_gather});
}

}  // namespace loom::ops
