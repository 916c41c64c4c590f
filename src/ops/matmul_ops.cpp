// matmul: a [..., M, K] x b [..., K, N] -> [..., M, N] with broadcast batch dims, plus an
// optional bias [N] added to every row (the form the fuse_matmul_bias pass makes, so that a
// backend can add it in the GEMM's epilogue instead of a separate pass over C).
#include "ir/op_registry.h"
#include "loom/ops.h"
#include "ops/op_families.h"
#include "ops/schema_util.h"
#include "ops/shape_inference.h"

namespace loom {

Tensor matmul(const Tensor& a, const Tensor& b, bool transpose_a, bool transpose_b) {
  return graph_of(a).add_node1(
      "matmul", {a, b}, Attributes{{"transpose_a", transpose_a}, {"transpose_b", transpose_b}});
}

namespace ops {
namespace {

// Two dims can be the same size: equal, or undecidable until the symbols are bound
// (inference runs again with static dims when a run is planned).
bool dims_may_match(const Dim& a, const Dim& b) {
  return !(a.is_static() && b.is_static()) || a.value() == b.value();
}

std::vector<ir::TensorType> infer_matmul(const ir::InferContext& ctx) {
  const ir::TensorType& a = ctx.input(0);
  const ir::TensorType& b = ctx.input(1);
  if (a.shape.size() < 2 || b.shape.size() < 2)
    ctx.fail(ErrorKind::shape, "both operands need rank >= 2");
  ctx.expect_same_dtype();
  if (!is_float(a.dtype) && a.dtype != DType::i32)
    ctx.fail(ErrorKind::dtype,
             std::string("matmul takes f32, f16, bf16 or i32, not ") + dtype_name(a.dtype));
  const bool transpose_a = ctx.attrs.get<bool>("transpose_a");
  const bool transpose_b = ctx.attrs.get<bool>("transpose_b");
  const size_t ra = a.shape.size(), rb = b.shape.size();
  const Dim& m = transpose_a ? a.shape[ra - 1] : a.shape[ra - 2];
  const Dim& ka = transpose_a ? a.shape[ra - 2] : a.shape[ra - 1];
  const Dim& kb = transpose_b ? b.shape[rb - 1] : b.shape[rb - 2];
  const Dim& n = transpose_b ? b.shape[rb - 2] : b.shape[rb - 1];
  if (!dims_may_match(ka, kb))
    ctx.fail(ErrorKind::shape,
             "inner dimensions differ: K = " + ka.str() + " for a, " + kb.str() + " for b");
  Shape batch_a(a.shape.begin(), a.shape.end() - 2);
  Shape batch_b(b.shape.begin(), b.shape.end() - 2);
  Shape out = broadcast_shapes(ctx, batch_a, batch_b);
  out.push_back(m);
  out.push_back(n);
  if (ctx.inputs.size() == 3) {
    const ir::TensorType& bias = ctx.input(2);
    if (!is_float(a.dtype)) ctx.fail(ErrorKind::dtype, "a bias needs a float matmul");
    if (bias.shape.size() != 1 || !dims_may_match(bias.shape[0], n))
      ctx.fail(ErrorKind::shape, "the bias must have shape [" + n.str() + "]");
  }
  return {{a.dtype, out}};
}

}  // namespace

void register_matmul_ops(ir::OpRegistry& r) {
  const std::vector<DType> dtypes{DType::f32, DType::f16, DType::bf16, DType::i32};
  r.add({.name = "matmul",
         .doc = "a [..., M, K] @ b [..., K, N] -> [..., M, N], batch dims broadcast, plus bias.",
         .inputs = {input("a", "[..., M, K]", dtypes, "T"), input("b", "[..., K, N]", dtypes, "T"),
                    optional_input("bias", "[N], added to every row (float only)", kFloatDTypes,
                                   "T")},
         .attrs = {attr("transpose_a", AttrType::boolean, false, "swap a's last two dims first"),
                   attr("transpose_b", AttrType::boolean, false, "swap b's last two dims first")},
         .outputs = {output("c", "[..., M, N]")},
         .infer = infer_matmul});
}

}  // namespace ops
}  // namespace loom
