// Ops on weights kept in GGUF blocks: dequantize(blocks) -> f32 [N, K] and
// quantized_matmul(x [..., K], blocks) -> f32 [..., N] (y = x · Wᵀ). The blocks are a u8
// tensor [N, row_bytes], one row of whole blocks per output channel, as a GGUF file stores
// them; the attribute "format" names the GGUF type ("Q4_0"). Attributes go through
// loom::Attributes until the typed op schemas land.
#include "io/ggml_types.h"
#include "ir/op_registry.h"
#include "loom/graph.h"
#include "loom/op_schema.h"
#include "loom/quant.h"
#include "ops/op_families.h"
#include "ops/schema_util.h"

namespace loom {

namespace quant {

Tensor dequantize(const Tensor& blocks, const std::string& format, int64_t k) {
  return graph_of(blocks).add_node1("dequantize", {blocks},
                                    Attributes{{"format", format}, {"k", k}});
}

Tensor quantized_matmul(const Tensor& x, const Tensor& blocks, const std::string& format,
                        bool int8_activations) {
  return graph_of(x).add_node1(
      "quantized_matmul", {x, blocks},
      Attributes{{"format", format}, {"int8_activations", int8_activations}});
}

}  // namespace quant

namespace ops {
namespace {

const io::GgmlTypeTraits& format_of(const ir::InferContext& ctx) {
  const std::string& name = ctx.attrs.get<std::string>("format");
  const quant::GgufFormat* f = quant::find_gguf_format(name);
  if (!f) ctx.fail(ErrorKind::value, "unknown GGUF block format \"" + name + "\"");
  return io::ggml_type_traits(io::GgmlType(f->ggml_type));
}

// blocks must be u8 [N, row_bytes] with row_bytes = K / block_size * bytes_per_block.
void check_blocks(const ir::InferContext& ctx, const ir::TensorType& blocks, const Dim& k) {
  const io::GgmlTypeTraits& t = format_of(ctx);
  if (blocks.dtype != DType::u8 || blocks.shape.size() != 2)
    ctx.fail(ErrorKind::dtype, "the blocks must be a u8 tensor [N, row_bytes]");
  if (!k.is_static()) return;  // checked again when the symbols are bound
  if (k.value() % t.block_size != 0)
    ctx.fail(ErrorKind::shape, "K = " + std::to_string(k.value()) + " is not a whole number of " +
                                   t.name + " blocks of " + std::to_string(t.block_size));
  const int64_t row_bytes = k.value() / t.block_size * t.bytes_per_block;
  if (blocks.shape[1].is_static() && blocks.shape[1].value() != row_bytes)
    ctx.fail(ErrorKind::shape, "a row of K = " + std::to_string(k.value()) + " " + t.name +
                                   " elements takes " + std::to_string(row_bytes) + " bytes, not " +
                                   blocks.shape[1].str());
}

std::vector<ir::TensorType> infer_dequantize(const ir::InferContext& ctx) {
  const ir::TensorType& blocks = ctx.input(0);
  const int64_t k = ctx.attrs.get<int64_t>("k");
  if (k < 0) ctx.fail(ErrorKind::shape, "K must not be negative");
  check_blocks(ctx, blocks, Dim(k));
  return {{DType::f32, Shape{blocks.shape[0], Dim(k)}}};
}

std::vector<ir::TensorType> infer_quantized_matmul(const ir::InferContext& ctx) {
  const ir::TensorType& x = ctx.input(0);
  const ir::TensorType& blocks = ctx.input(1);
  if (x.shape.empty()) ctx.fail(ErrorKind::shape, "x needs rank >= 1 ([..., K])");
  if (!is_float(x.dtype))
    ctx.fail(ErrorKind::dtype,
             std::string("x must be f32, f16 or bf16, not ") + dtype_name(x.dtype));
  check_blocks(ctx, blocks, x.shape.back());
  Shape out(x.shape.begin(), x.shape.end() - 1);
  out.push_back(blocks.shape.size() == 2 ? blocks.shape[0] : Dim::unknown());
  size_t next = 2;
  if (ctx.attrs.get_or<bool>("has_norm_weight", false)) {
    const ir::TensorType& g = ctx.input(next++);
    if (g.dtype != x.dtype || g.shape.size() != 1 || !(g.shape[0] == x.shape.back()))
      ctx.fail(ErrorKind::shape, "norm_weight must be [K] in x's dtype");
  }
  if (ctx.attrs.get_or<bool>("has_residual", false)) {
    const ir::TensorType& r = ctx.input(next++);
    if (r.dtype != DType::f32 || r.shape.size() != out.size())
      ctx.fail(ErrorKind::shape, "residual must be f32 with y's shape");
    for (size_t d = 0; d < out.size(); ++d)
      if (!(r.shape[d] == out[d])) ctx.fail(ErrorKind::shape, "residual must have y's shape");
  }
  if (ctx.attrs.get_or<bool>("has_gate_blocks", false)) {
    const ir::TensorType& gate = ctx.input(next++);
    if (!(gate == blocks)) ctx.fail(ErrorKind::shape, "gate_blocks must match the blocks");
  }
  return {{DType::f32, out}};
}

}  // namespace

void register_quant_ops(ir::OpRegistry& r) {
  const AttrSpec format = required_attr("format", AttrType::string,
                                        "GGUF block format of the rows (\"Q4_0\", \"Q8_0\", ...)");
  // Not foldable: folding would expand a quantized constant back to floats.
  r.add({.name = "dequantize",
         .doc = "GGUF blocks u8 [N, row_bytes] expanded to f32 [N, K].",
         .inputs = {input("blocks", "u8 [N, row_bytes]: one row of whole blocks per channel",
                          {DType::u8})},
         .attrs = {format, at_least(required_attr("k", AttrType::integer, "elements per row"), 0)},
         .outputs = {output("w", "f32 [N, K]")},
         .infer = infer_dequantize,
         .foldable = false});
  r.add({.name = "quantized_matmul",
         .doc = "x [..., K] times the transpose of GGUF-block weights [N, K]: f32 [..., N]; "
                "optionally x RMS-normalised first, a SwiGLU gate and a residual added (the "
                "fuse_quantized_matmul_norm_residual pass sets these).",
         .inputs = {input("x", "activations [..., K]", kFloatDTypes),
                    input("blocks", "u8 [N, row_bytes]: the weight's rows as GGUF blocks",
                          {DType::u8}),
                    optional_input("norm_weight",
                                   "[K] in x's dtype: x is replaced by rms_norm(x, norm_weight, "
                                   "norm_eps) over its last axis",
                                   kFloatDTypes),
                    optional_input("residual", "f32 [..., N]: added to y", {DType::f32}),
                    optional_input("gate_blocks",
                                   "u8 [N, row_bytes] in the same format: y becomes "
                                   "silu(x Gᵀ) * (x Wᵀ), the SwiGLU of a gated MLP",
                                   {DType::u8})},
         .attrs = {format,
                   attr("int8_activations", AttrType::boolean, true,
                        "the kernels may round x. CPU: to int8 per block of 32 for integer dot "
                        "products (Q4_0, Q4_1, Q8_0), as llama.cpp does; CUDA, more than 8 "
                        "rows of f32 x: to f16 for a tensor-core GEMM. false: exact float "
                        "products."),
                   attr("norm_eps", AttrType::real, op_defaults::rms_norm_eps,
                        "epsilon of the RMS normalisation (with norm_weight)"),
                   optional_attr("has_norm_weight", AttrType::boolean,
                                 "a norm_weight input is given (set from the inputs)"),
                   optional_attr("has_residual", AttrType::boolean,
                                 "a residual input is given (set from the inputs)"),
                   optional_attr("has_gate_blocks", AttrType::boolean,
                                 "a gate_blocks input is given (set from the inputs)")},
         .outputs = {output("y", "f32 [..., N]")},
         .infer = infer_quantized_matmul,
         .check_attrs = presence_flags(2, {{"has_norm_weight", "norm_weight"},
                                           {"has_residual", "residual"},
                                           {"has_gate_blocks", "gate_blocks"}}),
         .foldable = false});
}

}  // namespace ops
}  // namespace loom
