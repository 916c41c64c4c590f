// Shape ops: reshape, transpose, broadcast_to, concat, split.
#include <algorithm>
#include <map>
#include <set>
#include <string>

#include "ir/op_registry.h"
#include "loom/ops.h"
#include "ops/op_families.h"
#include "ops/schema_util.h"
#include "ops/shape_inference.h"

namespace loom {

namespace {

std::string type_str(const Tensor& t) { return ir::TensorType{t.dtype(), t.shape()}.str(); }

}  // namespace

Tensor reshape(const Tensor& x, Shape shape) {
  return graph_of(x).add_node1("reshape", {x}, Attributes{{"shape", std::move(shape)}});
}

Tensor transpose(const Tensor& x, std::vector<int64_t> perm) {
  return graph_of(x).add_node1("transpose", {x}, Attributes{{"perm", std::move(perm)}});
}

Tensor permute(const Tensor& x, std::vector<int64_t> perm) { return transpose(x, std::move(perm)); }

Tensor transpose(const Tensor& x) {
  int rank = x.rank();
  if (rank < 2)
    fail(ErrorKind::shape,
         "transpose(" + type_str(x) + "): swapping the last two axes needs rank >= 2");
  std::vector<int64_t> perm(static_cast<size_t>(rank));
  for (int i = 0; i < rank; ++i) perm[size_t(i)] = i;
  std::swap(perm[size_t(rank - 2)], perm[size_t(rank - 1)]);
  return transpose(x, std::move(perm));
}

Tensor broadcast_to(const Tensor& x, Shape shape) {
  return graph_of(x).add_node1("broadcast_to", {x}, Attributes{{"shape", std::move(shape)}});
}

Tensor concat(const std::vector<Tensor>& xs, int64_t axis) {
  if (xs.empty()) fail(ErrorKind::value, "concat: needs at least one input");
  return graph_of(xs.front()).add_node1("concat", xs, Attributes{{"axis", axis}});
}

std::vector<Tensor> split(const Tensor& x, std::vector<int64_t> sizes, int64_t axis) {
  return graph_of(x).add_node("split", {x},
                              Attributes{{"sizes", std::move(sizes)}, {"axis", axis}});
}

// Recorded as "parts" rather than sizes so that a symbolic dim can be split too; inference
// computes the sizes (and checks divisibility) once the dim is known.
std::vector<Tensor> split(const Tensor& x, int64_t parts, int64_t axis) {
  return graph_of(x).add_node("split", {x}, Attributes{{"parts", parts}, {"axis", axis}});
}

}  // namespace loom

namespace loom::ops {

namespace {

using ir::InferContext;
using ir::TensorType;

bool is_unknown(const Dim& d) { return d == Dim::unknown(); }

// A product of dims as coefficient × symbols, so that reshape can cancel symbols
// ([seq, 64] -> [-1, 8, 8] gives [seq, 8, 8]) before the symbols are bound.
struct DimProduct {
  int64_t coefficient = 1;
  std::multiset<std::string> symbols;
  bool has_unknown = false;  // a "?" dim: equal to nothing, not even another "?"

  void multiply(const Dim& d) {
    if (is_unknown(d)) {
      has_unknown = true;
    } else if (d.is_symbol()) {
      symbols.insert(d.symbol());
    } else if (__builtin_mul_overflow(coefficient, d.value(), &coefficient)) {
      // Checked: a product past int64 was signed overflow (undefined behaviour).
      loom::fail(ErrorKind::shape, "reshape: the dims' product overflows int64");
    }
  }
  bool is_static() const { return symbols.empty() && !has_unknown; }
};

// in / known, or Dim::unknown() when it cannot be expressed as one dim yet.
Dim divide(const InferContext& ctx, const DimProduct& in, const DimProduct& known,
           const Shape& target) {
  if (known.coefficient == 0)
    ctx.fail(ErrorKind::shape,
             "cannot infer the -1 dim of " + to_string(target) + " next to a zero-sized dim");
  if (in.coefficient == 0) return Dim(int64_t(0));
  if (in.has_unknown || known.has_unknown) return Dim::unknown();
  if (!std::includes(in.symbols.begin(), in.symbols.end(), known.symbols.begin(),
                     known.symbols.end()))
    return Dim::unknown();
  std::multiset<std::string> rest;
  std::set_difference(in.symbols.begin(), in.symbols.end(), known.symbols.begin(),
                      known.symbols.end(), std::inserter(rest, rest.end()));
  if (in.coefficient % known.coefficient != 0) {
    if (rest.empty())
      ctx.fail(ErrorKind::shape, "cannot reshape " + std::to_string(in.coefficient) +
                                     " elements into " + to_string(target));
    return Dim::unknown();
  }
  int64_t ratio = in.coefficient / known.coefficient;
  if (rest.empty()) return Dim(ratio);
  if (rest.size() == 1 && ratio == 1) return Dim(*rest.begin());
  return Dim::unknown();
}

std::vector<TensorType> infer_reshape(const InferContext& ctx) {
  const TensorType& x = ctx.input(0);
  Shape target = ctx.resolve(ctx.attrs.get<Shape>("shape"));
  int inferred = -1;
  DimProduct known;
  for (size_t i = 0; i < target.size(); ++i) {
    const Dim& d = target[i];
    if (is_unknown(d))
      ctx.fail(ErrorKind::shape,
               "target shape " + to_string(target) + " holds an unknown dim; use -1 instead");
    if (d.is_static() && d.value() == -1) {
      if (inferred >= 0)
        ctx.fail(ErrorKind::shape, "target shape " + to_string(target) + " has more than one -1");
      inferred = int(i);
      continue;
    }
    if (d.is_static() && d.value() < 0)
      ctx.fail(ErrorKind::shape, "target shape " + to_string(target) + " has a negative dim");
    known.multiply(d);
  }
  DimProduct in;
  for (const Dim& d : x.shape) in.multiply(d);

  if (inferred >= 0) {
    target[size_t(inferred)] = divide(ctx, in, known, target);
  } else {
    bool comparable = !in.has_unknown && !known.has_unknown && in.symbols == known.symbols;
    if (comparable && in.coefficient != known.coefficient)
      ctx.fail(ErrorKind::shape, "cannot reshape " + to_string(x.shape) + " into " +
                                     to_string(target) + " (element counts differ)");
  }
  if (ctx.binding) {
    for (const Dim& d : target)
      if (d.is_symbol() && !is_unknown(d))
        ctx.fail(ErrorKind::shape, "symbol '" + d.symbol() + "' of target shape " +
                                       to_string(target) + " is bound by no feed");
    if (!is_static(target))
      ctx.fail(ErrorKind::shape, "cannot infer the -1 dim of " + to_string(target));
  }
  return {TensorType{x.dtype, target}};
}

std::vector<TensorType> infer_transpose(const InferContext& ctx) {
  const TensorType& x = ctx.input(0);
  const auto& perm = ctx.attrs.get<std::vector<int64_t>>("perm");
  int rank = int(x.shape.size());
  auto perm_text = [&] { return to_string(Extents(perm.begin(), perm.end())); };
  if (int(perm.size()) != rank)
    ctx.fail(ErrorKind::shape, "perm " + perm_text() + " has " + std::to_string(perm.size()) +
                                   " entries for rank " + std::to_string(rank));
  Shape out(static_cast<size_t>(rank));
  std::vector<bool> seen(size_t(rank), false);
  for (int i = 0; i < rank; ++i) {
    int64_t p = perm[size_t(i)] < 0 ? perm[size_t(i)] + rank : perm[size_t(i)];
    if (p < 0 || p >= rank || seen[size_t(p)])
      ctx.fail(ErrorKind::shape, "perm " + perm_text() + " is not a permutation of the " +
                                     std::to_string(rank) + " axes");
    seen[size_t(p)] = true;
    out[size_t(i)] = x.shape[size_t(p)];
  }
  return {TensorType{x.dtype, out}};
}

std::vector<TensorType> infer_broadcast_to(const InferContext& ctx) {
  const TensorType& x = ctx.input(0);
  Shape target = ctx.resolve(ctx.attrs.get<Shape>("shape"));
  for (const Dim& d : target)
    if (is_unknown(d) || (d.is_static() && d.value() < 0))
      ctx.fail(ErrorKind::shape, "target shape " + to_string(target) + " is not a valid shape");
  if (x.shape.size() > target.size())
    ctx.fail(ErrorKind::shape, "cannot broadcast to lower rank " + to_string(target));
  size_t offset = target.size() - x.shape.size();
  for (size_t i = 0; i < x.shape.size(); ++i) {
    const Dim& d = x.shape[i];
    const Dim& t = target[offset + i];
    // A "?" dim is checked again when the symbols are bound.
    bool fits = d == t || (d.is_static() && d.value() == 1) || is_unknown(d);
    if (!fits)
      ctx.fail(ErrorKind::shape, "cannot broadcast to " + to_string(target) + " (axis " +
                                     std::to_string(i) + ": " + d.str() + " vs " + t.str() + ")");
  }
  return {TensorType{x.dtype, target}};
}

std::vector<TensorType> infer_concat(const InferContext& ctx) {
  ctx.expect_same_dtype();
  const TensorType& first = ctx.input(0);
  int rank = int(first.shape.size());
  if (rank == 0) ctx.fail(ErrorKind::shape, "cannot concatenate scalars");
  int axis = normalize_axes(ctx, {ctx.attrs.get<int64_t>("axis")}, rank, false).at(0);
  Shape out = first.shape;
  int64_t axis_total = 0;
  bool axis_static = true;
  for (size_t k = 0; k < ctx.inputs.size(); ++k) {
    const Shape& s = ctx.input(k).shape;
    if (int(s.size()) != rank)
      ctx.fail(ErrorKind::shape, "input " + std::to_string(k) + " has rank " +
                                     std::to_string(s.size()) + ", input 0 has rank " +
                                     std::to_string(rank));
    for (int d = 0; d < rank; ++d) {
      if (d == axis) continue;
      Dim& o = out[size_t(d)];
      const Dim& dk = s[size_t(d)];
      if (is_unknown(o)) {
        o = dk;  // a "?" is checked again when the symbols are bound
      } else if (!is_unknown(dk) && dk != o) {
        ctx.fail(ErrorKind::shape, "input " + std::to_string(k) + " differs on axis " +
                                       std::to_string(d) + " (" + dk.str() + " vs " + o.str() +
                                       ")");
      }
    }
    const Dim& a = s[size_t(axis)];
    if (a.is_static()) {
      axis_total += a.value();
    } else {
      axis_static = false;
    }
  }
  // A single input keeps its (possibly symbolic) dim.
  if (ctx.inputs.size() > 1) out[size_t(axis)] = axis_static ? Dim(axis_total) : Dim::unknown();
  return {TensorType{first.dtype, out}};
}

std::vector<TensorType> infer_split(const InferContext& ctx) {
  const TensorType& x = ctx.input(0);
  int rank = int(x.shape.size());
  int axis = normalize_axes(ctx, {ctx.attrs.get<int64_t>("axis")}, rank, false).at(0);
  const Dim& dim = x.shape[size_t(axis)];
  std::vector<Dim> sizes;
  if (ctx.attrs.has("parts")) {
    int64_t parts = ctx.attrs.get<int64_t>("parts");
    if (parts <= 0)
      ctx.fail(ErrorKind::value, "parts must be positive, got " + std::to_string(parts));
    Dim each = parts == 1 ? dim : Dim::unknown();
    if (dim.is_static()) {
      if (dim.value() % parts != 0)
        ctx.fail(ErrorKind::shape, "axis " + std::to_string(axis) + " of size " + dim.str() +
                                       " does not split into " + std::to_string(parts) +
                                       " equal parts");
      each = Dim(dim.value() / parts);
    }
    sizes.assign(size_t(parts), each);
  } else {
    const auto& given = ctx.attrs.get<std::vector<int64_t>>("sizes");
    std::string text = to_string(Extents(given.begin(), given.end()));
    if (given.empty()) ctx.fail(ErrorKind::value, "sizes must not be empty");
    int64_t total = 0;
    for (int64_t s : given) {
      if (s < 0) ctx.fail(ErrorKind::value, "sizes " + text + " has a negative size");
      total += s;
      sizes.emplace_back(s);
    }
    if (dim.is_static() && total != dim.value())
      ctx.fail(ErrorKind::shape, "sizes " + text + " add up to " + std::to_string(total) +
                                     ", axis " + std::to_string(axis) + " has size " + dim.str());
  }
  std::vector<TensorType> outs;
  for (const Dim& s : sizes) {
    TensorType t = x;
    t.shape[size_t(axis)] = s;
    outs.push_back(std::move(t));
  }
  return outs;
}

// split takes exactly one of sizes and parts.
void check_split(const std::string& op, Attributes& attrs, const std::vector<bool>&) {
  bool sizes = attrs.has("sizes"), parts = attrs.has("parts");
  if (sizes && parts)
    fail(ErrorKind::value, op + ": give sizes or parts, not both (sizes " +
                               attr_to_string(attrs.items().at("sizes")) + ", parts " +
                               attr_to_string(attrs.items().at("parts")) + ")");
  if (!sizes && !parts) fail(ErrorKind::value, op + ": needs sizes or parts");
}

}  // namespace

void register_shape_ops(ir::OpRegistry& r) {
  r.add({.name = "reshape",
         .doc = "x's elements in a new shape (no copy).",
         .inputs = {input("x", "values")},
         .attrs = {required_attr("shape", AttrType::shape,
                                 "the new shape; one dim may be -1; symbols allowed")},
         .outputs = {output("y", "aliases x")},
         .infer = infer_reshape,
         .aliases_input = 0});
  r.add({.name = "transpose",
         .doc = "x with its axes permuted: y.shape[i] = x.shape[perm[i]].",
         .inputs = {input("x", "values", kByteDTypes)},
         .attrs = {required_attr("perm", AttrType::int_list, "a permutation of the axes")},
         .outputs = {output("y", "x's dtype")},
         .infer = infer_transpose});
  r.add({.name = "broadcast_to",
         .doc = "x repeated along new and size-1 axes to shape (NumPy broadcasting).",
         .inputs = {input("x", "values", kByteDTypes)},
         .attrs = {required_attr("shape", AttrType::shape, "the target shape")},
         .outputs = {output("y", "x's dtype")},
         .infer = infer_broadcast_to});
  r.add({.name = "concat",
         .doc = "The inputs joined along axis.",
         .inputs = {variadic_input("xs", "one dtype, equal shapes off the axis", kByteDTypes, "T")},
         .attrs = {required_attr("axis", AttrType::integer, "the joined axis")},
         .outputs = {output("y", "xs' dtype")},
         .infer = infer_concat});
  r.add({.name = "split",
         .doc = "x cut along axis into pieces of the given sizes, or into parts equal pieces.",
         .inputs = {input("x", "values", kByteDTypes)},
         .attrs = {optional_attr("sizes", AttrType::int_list, "size of each piece (or parts)"),
                   at_least(optional_attr("parts", AttrType::integer,
                                          "number of equal pieces (or sizes)"),
                            1),
                   required_attr("axis", AttrType::integer, "the cut axis")},
         .outputs = {{.name = "pieces", .doc = "one per piece", .variadic = true}},
         .infer = infer_split,
         .check_attrs = check_split});
}

}  // namespace loom::ops
