// Elementwise ops: binary arithmetic and comparison with numpy broadcasting, where, unary
// math, and cast. The public functions and the op definitions live together so that a
// reader sees what each function builds and what the registry checks.
#include <cmath>
#include <initializer_list>
#include <string>

#include "loom/ops.h"
#include "ops/op_families.h"
#include "ops/schema_util.h"
#include "ops/shape_inference.h"

namespace loom {

namespace {

Tensor binary(const char* op, const Tensor& a, const Tensor& b) {
  return graph_of(a).add_node1(op, {a, b});
}

Tensor unary(const char* op, const Tensor& x) { return graph_of(x).add_node1(op, {x}); }

// A rank-0 constant of the tensor's dtype, so that `x * 0.5` keeps x's dtype.
Tensor scalar_like(const Tensor& t, double value) { return graph_of(t).constant(value, t.dtype()); }

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) { return binary("add", a, b); }
Tensor sub(const Tensor& a, const Tensor& b) { return binary("sub", a, b); }
Tensor mul(const Tensor& a, const Tensor& b) { return binary("mul", a, b); }
Tensor div(const Tensor& a, const Tensor& b) { return binary("div", a, b); }
Tensor pow(const Tensor& a, const Tensor& b) { return binary("pow", a, b); }
Tensor maximum(const Tensor& a, const Tensor& b) { return binary("maximum", a, b); }
Tensor minimum(const Tensor& a, const Tensor& b) { return binary("minimum", a, b); }
Tensor equal(const Tensor& a, const Tensor& b) { return binary("equal", a, b); }
Tensor less(const Tensor& a, const Tensor& b) { return binary("less", a, b); }
Tensor greater(const Tensor& a, const Tensor& b) { return binary("greater", a, b); }

Tensor where(const Tensor& condition, const Tensor& a, const Tensor& b) {
  return graph_of(condition).add_node1("where", {condition, a, b});
}

Tensor neg(const Tensor& x) { return unary("neg", x); }
// |x| of a complex tensor is a real one: its own op, so that "abs" keeps x's dtype.
Tensor abs(const Tensor& x) { return unary(x.dtype() == DType::c64 ? "complex_abs" : "abs", x); }
Tensor exp(const Tensor& x) { return unary("exp", x); }
Tensor log(const Tensor& x) { return unary("log", x); }
Tensor sqrt(const Tensor& x) { return unary("sqrt", x); }
Tensor rsqrt(const Tensor& x) { return unary("rsqrt", x); }
Tensor sin(const Tensor& x) { return unary("sin", x); }
Tensor cos(const Tensor& x) { return unary("cos", x); }
Tensor tanh(const Tensor& x) { return unary("tanh", x); }
Tensor sigmoid(const Tensor& x) { return unary("sigmoid", x); }
Tensor silu(const Tensor& x) { return unary("silu", x); }
Tensor relu(const Tensor& x) { return unary("relu", x); }

Tensor gelu(const Tensor& x, GeluApproximation approximation) {
  return unary(approximation == GeluApproximation::tanh ? "gelu_tanh" : "gelu", x);
}

Tensor cast(const Tensor& x, DType dtype) {
  return graph_of(x).add_node1("cast", {x}, Attributes{{"dtype", dtype}});
}

Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
Tensor operator-(const Tensor& x) { return neg(x); }
Tensor operator+(const Tensor& a, double b) { return add(a, scalar_like(a, b)); }
Tensor operator-(const Tensor& a, double b) { return sub(a, scalar_like(a, b)); }
Tensor operator*(const Tensor& a, double b) { return mul(a, scalar_like(a, b)); }
Tensor operator/(const Tensor& a, double b) { return div(a, scalar_like(a, b)); }
Tensor operator+(double a, const Tensor& b) { return add(scalar_like(b, a), b); }
Tensor operator-(double a, const Tensor& b) { return sub(scalar_like(b, a), b); }
Tensor operator*(double a, const Tensor& b) { return mul(scalar_like(b, a), b); }
Tensor operator/(double a, const Tensor& b) { return div(scalar_like(b, a), b); }

}  // namespace loom

namespace loom::ops {

namespace {

using ir::InferContext;
using ir::TensorType;

// The dtypes elementwise kernels compute on: byte-addressable floats and integers (packed
// i4/u4 and complex have their own ops), optionally bool.
bool is_elementwise_dtype(DType d, bool allow_bool) {
  const DTypeInfo& info = dtype_info(d);
  if (d == DType::boolean) return allow_bool;
  return (info.is_float || info.is_integer) && !info.is_complex && info.bits >= 8;
}

void expect_elementwise_dtype(const InferContext& ctx, size_t input, bool allow_bool) {
  DType d = ctx.input(input).dtype;
  if (!is_elementwise_dtype(d, allow_bool))
    ctx.fail(ErrorKind::dtype, std::string("does not support dtype ") + dtype_name(d) +
                                   (allow_bool ? "; expected a float, integer or bool dtype"
                                               : "; expected a float or integer dtype"));
}

Shape broadcast_inputs(const InferContext& ctx) {
  Shape shape = ctx.input(0).shape;
  for (size_t i = 1; i < ctx.inputs.size(); ++i)
    shape = broadcast_shapes(ctx, shape, ctx.input(i).shape);
  return shape;
}

// add, sub, mul, div, pow, maximum, minimum: one numeric dtype in and out.
std::vector<TensorType> infer_arithmetic(const InferContext& ctx) {
  ctx.expect_same_dtype();
  expect_elementwise_dtype(ctx, 0, /*allow_bool=*/false);
  return {{ctx.input(0).dtype, broadcast_inputs(ctx)}};
}

// add, sub, mul, div: also on complex64.
std::vector<TensorType> infer_field_arithmetic(const InferContext& ctx) {
  ctx.expect_same_dtype();
  if (ctx.input(0).dtype != DType::c64) expect_elementwise_dtype(ctx, 0, /*allow_bool=*/false);
  return {{ctx.input(0).dtype, broadcast_inputs(ctx)}};
}

// equal also compares bools; less and greater need an order.
std::vector<TensorType> infer_equality(const InferContext& ctx) {
  ctx.expect_same_dtype();
  expect_elementwise_dtype(ctx, 0, /*allow_bool=*/true);
  return {{DType::boolean, broadcast_inputs(ctx)}};
}

std::vector<TensorType> infer_ordering(const InferContext& ctx) {
  ctx.expect_same_dtype();
  expect_elementwise_dtype(ctx, 0, /*allow_bool=*/false);
  return {{DType::boolean, broadcast_inputs(ctx)}};
}

std::vector<TensorType> infer_where(const InferContext& ctx) {
  if (ctx.input(0).dtype != DType::boolean)
    ctx.fail(ErrorKind::dtype,
             std::string("condition must be bool, got ") + dtype_name(ctx.input(0).dtype));
  if (ctx.input(1).dtype != ctx.input(2).dtype)
    ctx.fail(ErrorKind::dtype, std::string("both branches need one dtype, got ") +
                                   dtype_name(ctx.input(1).dtype) + " and " +
                                   dtype_name(ctx.input(2).dtype));
  expect_elementwise_dtype(ctx, 1, /*allow_bool=*/true);
  return {{ctx.input(1).dtype, broadcast_inputs(ctx)}};
}

// exp, log, ...: transcendental math is defined on floats only.
std::vector<TensorType> infer_float_unary(const InferContext& ctx) {
  ctx.expect_float(0);
  return {ctx.input(0)};
}

// neg, abs, relu: also meaningful on integers.
std::vector<TensorType> infer_numeric_unary(const InferContext& ctx) {
  expect_elementwise_dtype(ctx, 0, /*allow_bool=*/false);
  return {ctx.input(0)};
}

std::vector<TensorType> infer_cast(const InferContext& ctx) {
  DType to = ctx.attrs.get<DType>("dtype");
  expect_elementwise_dtype(ctx, 0, /*allow_bool=*/true);
  if (!is_elementwise_dtype(to, /*allow_bool=*/true))
    ctx.fail(ErrorKind::dtype, std::string("cannot cast to ") + dtype_name(to) +
                                   "; expected f32, f16, bf16, i8, u8, i32, i64 or bool");
  return {{to, ctx.input(0).shape}};
}

// Decompositions of the activations into exp, tanh and arithmetic.
std::vector<Tensor> sigmoid_parts(Graph&, const std::vector<Tensor>& in, const Attributes&) {
  return {1.0 / (1.0 + exp(-in[0]))};
}

std::vector<Tensor> silu_parts(Graph&, const std::vector<Tensor>& in, const Attributes&) {
  return {in[0] / (1.0 + exp(-in[0]))};
}

std::vector<Tensor> gelu_tanh_parts(Graph&, const std::vector<Tensor>& in, const Attributes&) {
  const Tensor& x = in[0];
  const double k = std::sqrt(2.0 / 3.14159265358979323846);
  return {0.5 * x * (1.0 + tanh(k * (x + 0.044715 * x * x * x)))};
}

struct Unary {
  const char* name;
  const char* doc;
  ir::DecomposeFn decompose = nullptr;
};

void add_unary(ir::OpRegistry& r, std::initializer_list<Unary> ops,
               const std::vector<DType>& dtypes, const ir::InferFn& infer) {
  for (const Unary& u : ops)
    r.add({.name = u.name,
           .doc = u.doc,
           .inputs = {input("x", "values", dtypes)},
           .outputs = {output("y", "x's dtype and shape")},
           .infer = infer,
           .decompose = u.decompose});
}

void add_binary(ir::OpRegistry& r, std::initializer_list<std::pair<const char*, const char*>> ops,
                const std::vector<DType>& dtypes, const char* out_doc, const ir::InferFn& infer) {
  for (const auto& [name, doc] : ops)
    r.add({.name = name,
           .doc = doc,
           .inputs = {input("a", "broadcasts with b", dtypes, "T"),
                      input("b", "broadcasts with a", dtypes, "T")},
           .outputs = {output("y", out_doc)},
           .infer = infer});
}

}  // namespace

void register_elementwise_ops(ir::OpRegistry& r) {
  std::vector<DType> field_dtypes = kNumericDTypes;
  field_dtypes.push_back(DType::c64);
  add_binary(r,
             {{"add", "a + b."},
              {"sub", "a - b."},
              {"mul", "a * b."},
              {"div", "a / b (integers truncate toward zero; division by zero gives 0)."}},
             field_dtypes, "the operands' dtype, broadcast shape", infer_field_arithmetic);
  add_binary(r,
             {{"pow", "a ** b."},
              {"maximum", "The larger of a and b (NaN propagates)."},
              {"minimum", "The smaller of a and b (NaN propagates)."}},
             kNumericDTypes, "the operands' dtype, broadcast shape", infer_arithmetic);
  add_binary(r, {{"equal", "a == b."}}, kNumericOrBoolDTypes, "bool, broadcast shape",
             infer_equality);
  add_binary(r, {{"less", "a < b."}, {"greater", "a > b."}}, kNumericDTypes,
             "bool, broadcast shape", infer_ordering);
  r.add({.name = "where",
         .doc = "a where condition is true, else b; the three broadcast.",
         .inputs = {input("condition", "bool", {DType::boolean}),
                    input("a", "taken where condition", kNumericOrBoolDTypes, "T"),
                    input("b", "taken elsewhere", kNumericOrBoolDTypes, "T")},
         .outputs = {output("y", "a's dtype, broadcast shape")},
         .infer = infer_where});
  add_unary(r,
            {{"exp", "e ** x."},
             {"log", "Natural logarithm."},
             {"sqrt", "Square root."},
             {"rsqrt", "1 / sqrt(x)."},
             {"sin", "Sine."},
             {"cos", "Cosine."},
             {"tanh", "Hyperbolic tangent."},
             {"sigmoid", "1 / (1 + exp(-x)).", sigmoid_parts},
             {"silu", "x * sigmoid(x).", silu_parts},
             {"gelu", "x * Phi(x), the exact (erf) GELU."},
             {"gelu_tanh", "GELU's tanh approximation.", gelu_tanh_parts}},
            kFloatDTypes, infer_float_unary);
  add_unary(r, {{"neg", "-x."}, {"abs", "|x|."}, {"relu", "max(x, 0)."}}, kNumericDTypes,
            infer_numeric_unary);
  r.add({.name = "cast",
         .doc = "x converted to dtype (floats to integers truncate and saturate; NaN gives 0).",
         .inputs = {input("x", "values", kNumericOrBoolDTypes)},
         .attrs = {required_attr("dtype", AttrType::dtype, "the result's dtype")},
         .outputs = {output("y", "dtype, x's shape")},
         .infer = infer_cast});
}

}  // namespace loom::ops
