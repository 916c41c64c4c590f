// scaled_dot_product_attention: inference checks every shape and dtype, since the kernels
// trust them (they index with the checked extents and never re-check).
#include <cmath>
#include <string>

#include "ir/op_registry.h"
#include "loom/attention.h"
#include "ops/op_families.h"
#include "ops/schema_util.h"

namespace loom {

Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                    const AttentionOptions& options) {
  // Optional inputs by position: an undefined Tensor stands for an absent mask.
  std::vector<Tensor> inputs{q, k, v};
  if (options.mask || options.kv_len) inputs.push_back(options.mask ? *options.mask : Tensor{});
  if (options.kv_len) inputs.push_back(*options.kv_len);
  Attributes attrs{{"causal", options.causal},
                   {"window", options.window},
                   {"has_mask", options.mask.has_value()},
                   {"has_kv_len", options.kv_len.has_value()}};
  if (options.scale) attrs.set("scale", *options.scale);
  return graph_of(q).add_node1("scaled_dot_product_attention", inputs, attrs);
}

namespace ops {
namespace {

using ir::InferContext;
using ir::TensorType;

// Two dims that must be equal: only two static sizes or the same symbol can be compared
// here; different symbols are checked again once bound (inference runs at plan time too).
bool dims_conflict(const Dim& a, const Dim& b) {
  return a.is_static() && b.is_static() && a.value() != b.value();
}

void expect_dim(const InferContext& ctx, const Dim& got, const Dim& want, const std::string& what) {
  if (dims_conflict(got, want))
    ctx.fail(ErrorKind::shape, what + " is " + got.str() + " but must be " + want.str());
}

void check_mask(const InferContext& ctx, const TensorType& mask, const TensorType& q,
                const Shape& full) {
  if (mask.dtype != DType::boolean && mask.dtype != q.dtype)
    ctx.fail(ErrorKind::dtype, std::string("mask must be bool or q's dtype ") +
                                   dtype_name(q.dtype) + ", got " + dtype_name(mask.dtype));
  if (mask.shape.size() > 4)
    ctx.fail(ErrorKind::shape, "mask " + to_string(mask.shape) +
                                   " must broadcast to [B, Hq, Sq, Skv] = " + to_string(full));
  size_t offset = 4 - mask.shape.size();
  for (size_t d = 0; d < mask.shape.size(); ++d) {
    const Dim& m = mask.shape[d];
    if (m.is_static() && m.value() == 1) continue;
    if (dims_conflict(m, full[d + offset]))
      ctx.fail(ErrorKind::shape,
               "mask " + to_string(mask.shape) +
                   " does not broadcast to [B, Hq, Sq, Skv] = " + to_string(full));
  }
}

void check_kv_len(const InferContext& ctx, const TensorType& kv_len, const Dim& batch) {
  if (kv_len.dtype != DType::i32 && kv_len.dtype != DType::i64)
    ctx.fail(ErrorKind::dtype,
             std::string("kv_len must be i32 or i64, got ") + dtype_name(kv_len.dtype));
  bool fits =
      kv_len.shape.size() == 1 && ((kv_len.shape[0].is_static() && kv_len.shape[0].value() == 1) ||
                                   !dims_conflict(kv_len.shape[0], batch));
  if (!fits)
    ctx.fail(ErrorKind::shape, "kv_len must have shape [B] or [1], got " + to_string(kv_len.shape));
}

std::vector<TensorType> infer_attention(const InferContext& ctx) {
  bool has_mask = ctx.attrs.get_or<bool>("has_mask", false);
  bool has_kv_len = ctx.attrs.get_or<bool>("has_kv_len", false);
  size_t expected = 3 + size_t(has_mask) + size_t(has_kv_len);
  if (ctx.inputs.size() != expected)
    ctx.fail(ErrorKind::value,
             "has_mask and has_kv_len call for " + std::to_string(expected) + " inputs");
  const TensorType& q = ctx.input(0);
  const TensorType& k = ctx.input(1);
  const TensorType& v = ctx.input(2);
  if (!is_float(q.dtype))
    ctx.fail(ErrorKind::dtype,
             std::string("q must be f32, f16 or bf16, got ") + dtype_name(q.dtype));
  if (k.dtype != q.dtype || v.dtype != q.dtype)
    ctx.fail(ErrorKind::dtype, "q, k and v must have one dtype");
  if (q.shape.size() != 4 || k.shape.size() != 4 || v.shape.size() != 4)
    ctx.fail(ErrorKind::shape, "q must be [B, Hq, Sq, D] and k, v [B, Hkv, Skv, D]");
  for (size_t d = 0; d < 4; ++d)
    expect_dim(ctx, v.shape[d], k.shape[d], "v dim " + std::to_string(d));
  expect_dim(ctx, k.shape[0], q.shape[0], "the batch of k and v");
  expect_dim(ctx, k.shape[3], q.shape[3], "the head dim of k and v");
  const Dim& hq = q.shape[1];
  const Dim& hkv = k.shape[1];
  if (hkv.is_static() && hkv.value() == 0 && !(hq.is_static() && hq.value() == 0))
    ctx.fail(ErrorKind::shape, "k and v have no heads");
  if (hq.is_static() && hkv.is_static() && hkv.value() > 0 && hq.value() % hkv.value() != 0)
    ctx.fail(ErrorKind::shape,
             "query heads " + hq.str() + " must be a multiple of kv heads " + hkv.str());
  if (ctx.attrs.has("scale")) {
    double scale = ctx.attrs.get<double>("scale");
    if (!std::isfinite(scale)) ctx.fail(ErrorKind::value, "scale must be finite");
  }
  if (ctx.attrs.get_or<int64_t>("window", 0) < 0)
    ctx.fail(ErrorKind::value, "window must be >= 0 (0: no window)");
  size_t next = 3;
  if (has_mask)
    check_mask(ctx, ctx.input(next++), q, Shape{q.shape[0], hq, q.shape[2], k.shape[2]});
  if (has_kv_len) check_kv_len(ctx, ctx.input(next++), q.shape[0]);
  return {q};
}

}  // namespace

void register_attention_ops(ir::OpRegistry& r) {
  r.add({.name = "scaled_dot_product_attention",
         .doc = "softmax(q kᵀ · scale + mask) v over heads, with GQA, causal, kv_len and window.",
         .inputs = {input("q", "[B, Hq, Sq, D]", kFloatDTypes, "T"),
                    input("k", "[B, Hkv, Skv, D], Hq a multiple of Hkv", kFloatDTypes, "T"),
                    input("v", "[B, Hkv, Skv, D]", kFloatDTypes, "T"),
                    optional_input("mask",
                                   "bool (true: may attend) or additive float, "
                                   "broadcastable to [B, Hq, Sq, Skv]"),
                    optional_input("kv_len", "i32/i64 [B] or [1]: keys that count", kIndexDTypes)},
         .attrs = {optional_attr("scale", AttrType::real, "score scale (default 1/sqrt(D))"),
                   attr("causal", AttrType::boolean, false,
                        "query i sees keys j <= i + (kv_len - Sq): aligned to the end"),
                   at_least(attr("window", AttrType::integer, int64_t(0),
                                 "sliding window: keys newer than position - window (0: all)"),
                            0),
                   optional_attr("has_mask", AttrType::boolean,
                                 "whether mask is given (follows from the inputs)"),
                   optional_attr("has_kv_len", AttrType::boolean,
                                 "whether kv_len is given (follows from the inputs)")},
         .outputs = {output("y", "[B, Hq, Sq, D], q's dtype")},
         .infer = infer_attention,
         .check_attrs = presence_flags(3, {{"has_mask", "mask"}, {"has_kv_len", "kv_len"}})});
}

}  // namespace ops
}  // namespace loom
