// scaled_dot_product_attention: inference checks every shape and dtype, since the kernels
// trust them (they index with the checked extents and never re-check).
#include <cmath>
#include <iterator>
#include <string>
#include <vector>

#include "ir/op_registry.h"
#include "loom/attention.h"
#include "ops/op_families.h"
#include "ops/schema_util.h"

namespace loom {

Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                    const AttentionOptions& options) {
  // Optional inputs by position: an undefined Tensor stands for an absent one before a given
  // one.
  const std::optional<Tensor>* optional[] = {&options.mask, &options.kv_len, &options.k_scale,
                                             &options.v_scale};
  size_t given = 0;
  for (size_t i = 0; i < std::size(optional); ++i)
    if (optional[i]->has_value()) given = i + 1;
  std::vector<Tensor> inputs{q, k, v};
  for (size_t i = 0; i < given; ++i)
    inputs.push_back(optional[i]->has_value() ? **optional[i] : Tensor{});
  Attributes attrs{{"causal", options.causal},
                   {"window", options.window},
                   {"has_mask", options.mask.has_value()},
                   {"has_kv_len", options.kv_len.has_value()},
                   {"has_k_scale", options.k_scale.has_value()},
                   {"has_v_scale", options.v_scale.has_value()}};
  if (options.scale) attrs.set("scale", *options.scale);
  return graph_of(q).add_node1("scaled_dot_product_attention", inputs, attrs);
}

QuantizedKv quantize_kv(const Tensor& x) {
  std::vector<Tensor> out = graph_of(x).add_node("quantize_kv", {x}, Attributes{});
  return {out.at(0), out.at(1)};
}

namespace ops {
namespace {

const std::vector<DType> kKvDTypes{DType::f32, DType::f16, DType::bf16, DType::i8};

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

// An int8 cache's scales: f32 [B, Hkv, Skv], one per key of k (or v).
void check_kv_scale(const InferContext& ctx, const TensorType& scale, const TensorType& kv,
                    const std::string& name) {
  if (scale.dtype != DType::f32)
    ctx.fail(ErrorKind::dtype, name + " must be f32 [B, Hkv, Skv], got " + dtype_name(scale.dtype));
  if (scale.shape.size() != 3)
    ctx.fail(ErrorKind::shape, name + " must be [B, Hkv, Skv] = " +
                                   to_string(Shape{kv.shape[0], kv.shape[1], kv.shape[2]}) +
                                   ", got " + to_string(scale.shape));
  for (size_t d = 0; d < 3; ++d)
    expect_dim(ctx, scale.shape[d], kv.shape[d], name + " dim " + std::to_string(d));
}

std::vector<TensorType> infer_attention(const InferContext& ctx) {
  bool has_mask = ctx.attrs.get_or<bool>("has_mask", false);
  bool has_kv_len = ctx.attrs.get_or<bool>("has_kv_len", false);
  bool has_k_scale = ctx.attrs.get_or<bool>("has_k_scale", false);
  bool has_v_scale = ctx.attrs.get_or<bool>("has_v_scale", false);
  size_t expected =
      3 + size_t(has_mask) + size_t(has_kv_len) + size_t(has_k_scale) + size_t(has_v_scale);
  if (ctx.inputs.size() != expected)
    ctx.fail(ErrorKind::value, "has_mask, has_kv_len, has_k_scale and has_v_scale call for " +
                                   std::to_string(expected) + " inputs");
  const TensorType& q = ctx.input(0);
  const TensorType& k = ctx.input(1);
  const TensorType& v = ctx.input(2);
  if (!is_float(q.dtype))
    ctx.fail(ErrorKind::dtype,
             std::string("q must be f32, f16 or bf16, got ") + dtype_name(q.dtype));
  const bool int8_kv = k.dtype == DType::i8 || v.dtype == DType::i8;
  if (int8_kv) {
    if (k.dtype != DType::i8 || v.dtype != DType::i8)
      ctx.fail(ErrorKind::dtype, std::string("k and v must have one dtype (i8 for an int8 "
                                             "cache), got ") +
                                     dtype_name(k.dtype) + " and " + dtype_name(v.dtype));
    if (!has_k_scale || !has_v_scale)
      ctx.fail(ErrorKind::value, "i8 k and v need k_scale and v_scale (f32 [B, Hkv, Skv])");
  } else {
    if (k.dtype != q.dtype || v.dtype != q.dtype)
      ctx.fail(ErrorKind::dtype, "q, k and v must have one dtype (or k and v i8 with scales)");
    if (has_k_scale || has_v_scale)
      ctx.fail(ErrorKind::value,
               std::string("k_scale and v_scale go with i8 k and v, not ") + dtype_name(k.dtype));
  }
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
  if (has_k_scale) check_kv_scale(ctx, ctx.input(next++), k, "k_scale");
  if (has_v_scale) check_kv_scale(ctx, ctx.input(next++), v, "v_scale");
  return {q};
}

std::vector<TensorType> infer_quantize_kv(const InferContext& ctx) {
  const TensorType& x = ctx.input(0);
  if (!is_float(x.dtype))
    ctx.fail(ErrorKind::dtype,
             std::string("x must be f32, f16 or bf16, got ") + dtype_name(x.dtype));
  if (x.shape.size() != 4)
    ctx.fail(ErrorKind::shape, "x must be [B, H, S, D], got " + to_string(x.shape));
  return {{DType::i8, x.shape}, {DType::f32, Shape{x.shape[0], x.shape[1], x.shape[2]}}};
}

}  // namespace

void register_attention_ops(ir::OpRegistry& r) {
  r.add({.name = "scaled_dot_product_attention",
         .doc = "softmax(q kᵀ · scale + mask) v over heads, with GQA, causal, kv_len and window.",
         .inputs =
             {input("q", "[B, Hq, Sq, D]", kFloatDTypes, "T"),
              input("k", "[B, Hkv, Skv, D], Hq a multiple of Hkv; q's dtype or i8", kKvDTypes),
              input("v", "[B, Hkv, Skv, D]; k's dtype", kKvDTypes),
              optional_input("mask",
                             "bool (true: may attend) or additive float, "
                             "broadcastable to [B, Hq, Sq, Skv]"),
              optional_input("kv_len", "i32/i64 [B] or [1]: keys that count", kIndexDTypes),
              optional_input("k_scale", "f32 [B, Hkv, Skv]: i8 k's scale per key", {DType::f32}),
              optional_input("v_scale", "f32 [B, Hkv, Skv]: i8 v's scale per key", {DType::f32})},
         .attrs = {optional_attr("scale", AttrType::real, "score scale (default 1/sqrt(D))"),
                   attr("causal", AttrType::boolean, false,
                        "query i sees keys j <= i + (kv_len - Sq): aligned to the end"),
                   at_least(attr("window", AttrType::integer, int64_t(0),
                                 "sliding window: keys newer than position - window (0: all)"),
                            0),
                   optional_attr("has_mask", AttrType::boolean,
                                 "whether mask is given (follows from the inputs)"),
                   optional_attr("has_kv_len", AttrType::boolean,
                                 "whether kv_len is given (follows from the inputs)"),
                   optional_attr("has_k_scale", AttrType::boolean,
                                 "whether k_scale is given (follows from the inputs)"),
                   optional_attr("has_v_scale", AttrType::boolean,
                                 "whether v_scale is given (follows from the inputs)")},
         .outputs = {output("y", "[B, Hq, Sq, D], q's dtype")},
         .infer = infer_attention,
         .check_attrs = presence_flags(3, {{"has_mask", "mask"},
                                           {"has_kv_len", "kv_len"},
                                           {"has_k_scale", "k_scale"},
                                           {"has_v_scale", "v_scale"}})});
  r.add({.name = "quantize_kv",
         .doc = "Symmetric int8 per row of D for an int8 KV cache: scale = max|x| / 127, code = "
                "round(x / scale) (half away from zero), clamped to [-127, 127].",
         .inputs = {input("x", "[B, H, S, D]", kFloatDTypes)},
         .outputs = {output("codes", "i8 [B, H, S, D]"), output("scale", "f32 [B, H, S]")},
         .infer = infer_quantize_kv});
}

}  // namespace ops
}  // namespace loom
