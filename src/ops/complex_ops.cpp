// complex64 ops: real, imag, complex_abs, complex_abs2, angle, conj and complex(re, im). Arithmetic
// on complex64 (add, sub, mul, div) is in the elementwise family, whose ops take c64 operands.
#include "ir/op_registry.h"
#include "loom/fft.h"
#include "loom/ops.h"
#include "ops/op_families.h"
#include "ops/schema_util.h"
#include "ops/shape_inference.h"

namespace loom {

Tensor real(const Tensor& x) { return graph_of(x).add_node1("real", {x}); }
Tensor imag(const Tensor& x) { return graph_of(x).add_node1("imag", {x}); }
Tensor angle(const Tensor& x) { return graph_of(x).add_node1("angle", {x}); }
Tensor abs_squared(const Tensor& x) { return graph_of(x).add_node1("complex_abs2", {x}); }
Tensor conj(const Tensor& x) { return graph_of(x).add_node1("conj", {x}); }
Tensor complex(const Tensor& re, const Tensor& im) {
  return graph_of(re).add_node1("complex", {re, im});
}

namespace ops {
namespace {

using ir::InferContext;
using ir::TensorType;

std::vector<TensorType> infer_to_real(const InferContext& ctx) {
  return {{DType::f32, ctx.input(0).shape}};
}

std::vector<TensorType> infer_same(const InferContext& ctx) { return {ctx.input(0)}; }

std::vector<TensorType> infer_complex(const InferContext& ctx) {
  return {{DType::c64, broadcast_shapes(ctx, ctx.input(0).shape, ctx.input(1).shape)}};
}

}  // namespace

void register_complex_ops(ir::OpRegistry& r) {
  const std::vector<DType> c64{DType::c64}, f32{DType::f32};
  struct ToReal {
    const char* name;
    const char* doc;
  };
  for (const ToReal& op :
       {ToReal{"real", "The real part of x."}, ToReal{"imag", "The imaginary part of x."},
        ToReal{"complex_abs", "|x| = hypot(re, im) (abs() of a c64 tensor)."},
        ToReal{"complex_abs2", "|x|^2 = re^2 + im^2 in f32 (a power spectrum)."},
        ToReal{"angle", "The argument of x, atan2(im, re), in [-pi, pi]."}})
    r.add({.name = op.name,
           .doc = op.doc,
           .inputs = {input("x", "complex values", c64)},
           .outputs = {output("y", "f32, x's shape")},
           .infer = infer_to_real});
  r.add({.name = "conj",
         .doc = "The complex conjugate of x.",
         .inputs = {input("x", "complex values", c64)},
         .outputs = {output("y", "c64, x's shape")},
         .infer = infer_same});
  r.add({.name = "complex",
         .doc = "re + i im; re and im broadcast.",
         .inputs = {input("re", "real parts", f32), input("im", "imaginary parts", f32)},
         .outputs = {output("y", "c64, broadcast shape")},
         .infer = infer_complex});
}

}  // namespace ops
}  // namespace loom
