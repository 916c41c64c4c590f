// quantized_qkv_rope: the query, key and value projections of an attention layer's decode
// step as one node. Three quantized_matmul of the same x (with the same folded RMSNorm), the
// first two followed by rope. Internal: the fuse_qkv_rope pass makes it from those nodes, so
// that a GPU computes all three in one launch and rotates q and k in its epilogue instead of
// in four more kernels (rope q, rope k, and the launches of k and v).
//
// Each output row is one row of x (a sequence position of 1, as in decode): every row's q and
// k are rotated at position `offset`, the pairs of head_dim-sized heads as rope pairs them.
#include "io/ggml_types.h"
#include "loom/quant.h"
#include "ops/op_families.h"
#include "ops/schema_util.h"

namespace loom::ops {

namespace {

std::vector<ir::TensorType> infer_qkv_rope(const ir::InferContext& ctx) {
  const ir::TensorType& x = ctx.input(0);
  if (x.shape.empty() || !is_float(x.dtype))
    ctx.fail(ErrorKind::shape, "x must be a float tensor [..., K]");
  const std::string& name = ctx.attrs.get<std::string>("format");
  const quant::GgufFormat* f = quant::find_gguf_format(name);
  if (!f) ctx.fail(ErrorKind::value, "unknown GGUF block format \"" + name + "\"");
  const io::GgmlTypeTraits& t = io::ggml_type_traits(io::GgmlType(f->ggml_type));
  const int64_t head_dim = ctx.attrs.get<int64_t>("head_dim");
  int64_t dims = ctx.attrs.get<int64_t>("dims");
  if (dims == 0) dims = head_dim;
  if (head_dim <= 0 || dims % 2 != 0 || dims > head_dim)
    ctx.fail(ErrorKind::value, "head_dim must be positive and dims even and at most head_dim");
  std::vector<ir::TensorType> out;
  for (size_t i = 1; i <= 3; ++i) {
    const ir::TensorType& blocks = ctx.input(i);
    if (blocks.dtype != DType::u8 || blocks.shape.size() != 2)
      ctx.fail(ErrorKind::dtype, "the blocks must be u8 tensors [N, row_bytes]");
    const Dim& k = x.shape.back();
    if (k.is_static() && blocks.shape[1].is_static() &&
        (k.value() % t.block_size != 0 ||
         blocks.shape[1].value() != k.value() / t.block_size * t.bytes_per_block))
      ctx.fail(ErrorKind::shape,
               "blocks of " + std::string(t.name) + " do not match K = " + k.str());
    if (i < 3 && blocks.shape[0].is_static() && blocks.shape[0].value() % head_dim != 0)
      ctx.fail(ErrorKind::shape, "q and k rows must be whole heads of head_dim");
    Shape shape(x.shape.begin(), x.shape.end() - 1);
    shape.push_back(blocks.shape[0]);
    out.push_back({DType::f32, shape});
  }
  const ir::TensorType& offset = ctx.input(4);
  if (offset.shape.size() > 1 || (offset.shape.size() == 1 && !(offset.shape[0] == Dim(1))))
    ctx.fail(ErrorKind::shape, "offset must have shape [] or [1]");
  if (ctx.attrs.get_or<bool>("has_norm_weight", false)) {
    const ir::TensorType& g = ctx.input(5);
    if (g.dtype != x.dtype || g.shape.size() != 1 || !(g.shape[0] == x.shape.back()))
      ctx.fail(ErrorKind::shape, "norm_weight must be [K] in x's dtype");
  }
  return out;
}

// quantized_qkv_rope_cache: the caches first (the variables it writes), then
// quantized_qkv_rope's inputs, then the starts; outputs the caches (their own buffers) and q.
std::vector<ir::TensorType> infer_qkv_rope_cache(const ir::InferContext& ctx) {
  std::vector<ir::TensorType> fused_inputs(ctx.inputs.begin() + 2, ctx.inputs.begin() + 7);
  if (ctx.inputs.size() > 8) fused_inputs.push_back(ctx.input(8));
  const std::vector<ir::TensorType> qkv =
      infer_qkv_rope(ir::InferContext{ctx.op, fused_inputs, ctx.attrs, ctx.binding});
  const ir::TensorType& starts = ctx.input(7);
  for (int c = 0; c < 2; ++c) {
    const ir::TensorType& cache = ctx.input(size_t(c));
    const char* name = c == 0 ? "k_window" : "v_window";
    const std::vector<int64_t> window = ctx.attrs.get<std::vector<int64_t>>(name);
    if (cache.dtype != DType::f32)
      ctx.fail(ErrorKind::dtype, "the caches must be f32 (the projections' dtype)");
    if (window.size() != cache.shape.size())
      ctx.fail(ErrorKind::shape, std::string(name) + " must have the cache's rank");
    int64_t count = 1;
    for (size_t d = 0; d < window.size(); ++d) {
      const Dim& extent = cache.shape[d];
      if (window[d] < 0 || (extent.is_static() && window[d] > extent.value()))
        ctx.fail(ErrorKind::shape, std::string(name) + " does not fit in the cache");
      count *= window[d];
    }
    const ir::TensorType& rows = qkv[size_t(1 + c)];
    if (is_static(rows.shape) && numel(static_extents(rows.shape)) != count)
      ctx.fail(ErrorKind::shape, std::string(name) + " must hold the projection's elements");
  }
  if ((starts.dtype != DType::i32 && starts.dtype != DType::i64) || starts.shape.size() != 1 ||
      !(starts.shape[0] == Dim(int64_t(ctx.input(0).shape.size()))) ||
      ctx.input(1).shape.size() != ctx.input(0).shape.size())
    ctx.fail(ErrorKind::shape, "starts must be an index vector [rank of the caches]");
  return {ctx.input(0), ctx.input(1), qkv[0]};
}

}  // namespace

void register_projection_ops(ir::OpRegistry& r) {
  r.add({.name = "quantized_qkv_rope",
         .doc = "q, k, v = x Wqᵀ, x Wkᵀ, x Wvᵀ on GGUF blocks, q and k rotated by rope at "
                "offset (made by the fuse_qkv_rope pass).",
         .internal = true,
         .inputs = {input("x", "activations [..., K], one decode position per row", kFloatDTypes),
                    input("q_blocks", "u8 [Nq, row_bytes]", {DType::u8}),
                    input("k_blocks", "u8 [Nk, row_bytes]", {DType::u8}),
                    input("v_blocks", "u8 [Nv, row_bytes]", {DType::u8}),
                    input("offset", "the rows' position: shape [] or [1]", kIndexDTypes),
                    optional_input("norm_weight", "[K]: x is rms_norm(x, norm_weight) first",
                                   kFloatDTypes)},
         .attrs = {required_attr("format", AttrType::string, "GGUF block format of all three"),
                   attr("int8_activations", AttrType::boolean, true, "as quantized_matmul's (CPU)"),
                   attr("norm_eps", AttrType::real, op_defaults::rms_norm_eps,
                        "epsilon of the RMS normalisation (with norm_weight)"),
                   optional_attr("has_norm_weight", AttrType::boolean,
                                 "a norm_weight input is given (set from the inputs)"),
                   at_least(required_attr("head_dim", AttrType::integer, "features per head"), 1),
                   attr("base", AttrType::real, op_defaults::rope_base, "rope's frequency base"),
                   attr("interleaved", AttrType::boolean, op_defaults::rope_interleaved,
                        "rope pairs (2i, 2i+1); else (i, i + dims/2)"),
                   at_least(attr("dims", AttrType::integer, op_defaults::rope_dims,
                                 "rotated features per head (even); 0: all"),
                            0),
                   attr("scale", AttrType::real, op_defaults::rope_scale, "position multiplier")},
         .outputs = {output("q", "f32 [..., Nq], rotated"), output("k", "f32 [..., Nk], rotated"),
                     output("v", "f32 [..., Nv]")},
         .infer = infer_qkv_rope,
         .check_attrs = presence_flags(5, {{"has_norm_weight", "norm_weight"}}),
         .foldable = false});
  // The same node writing k and v into a layer's caches in place, as slice_update_inplace
  // would (made by the fuse_qkv_cache_write pass after inplace_state): output 0 is the k
  // cache's buffer, output 1 the v cache's.
  std::vector<AttrSpec> cache_attrs = r.at("quantized_qkv_rope").attrs;
  cache_attrs.push_back(required_attr(
      "k_window", AttrType::int_list,
      "the window k fills in the k cache, k's elements in order (a slice_update's update shape)"));
  cache_attrs.push_back(required_attr("v_window", AttrType::int_list, "the same for v"));
  r.add({.name = "quantized_qkv_rope_cache",
         .doc = "quantized_qkv_rope writing k and v into the caches' windows at starts, in place "
                "(made by the fuse_qkv_cache_write pass).",
         .role = ir::OpRole::inplace_update,
         .internal = true,
         .inputs = {input("k_cache", "f32 variable the rotated k goes into", {DType::f32}),
                    input("v_cache", "f32 variable v goes into", {DType::f32}),
                    input("x", "activations [..., K], one decode position per row", kFloatDTypes),
                    input("q_blocks", "u8 [Nq, row_bytes]", {DType::u8}),
                    input("k_blocks", "u8 [Nk, row_bytes]", {DType::u8}),
                    input("v_blocks", "u8 [Nv, row_bytes]", {DType::u8}),
                    input("offset", "the rows' position: shape [] or [1]", kIndexDTypes),
                    input("starts", "[rank of the caches], read at run time and clamped",
                          kIndexDTypes),
                    optional_input("norm_weight", "[K]: x is rms_norm(x, norm_weight) first",
                                   kFloatDTypes)},
         .attrs = cache_attrs,
         .outputs = {output("k_cache", "aliases k_cache"), output("v_cache", "aliases v_cache"),
                     output("q", "f32 [..., Nq], rotated")},
         .infer = infer_qkv_rope_cache,
         .check_attrs = presence_flags(8, {{"has_norm_weight", "norm_weight"}}),
         .has_side_effect = true,
         .aliases_input = 0,
         .updated_inputs = 2,
         .foldable = false});
}

}  // namespace loom::ops
