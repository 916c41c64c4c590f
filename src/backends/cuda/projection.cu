// CUDA kernel of quantized_qkv_rope (src/ops/projection_ops.cpp): one GEMV launch (per group of
// 8 rows of x) computes q, k and v and rotates q and k in its epilogue (quantized_matmul.cu).
// The fuse_qkv_rope pass makes the node only where this kernel takes its shapes.
#include <span>
#include <string>

#include "backends/cuda/cuda_backend_impl.h"
#include "backends/cuda/cuda_kernels.h"
#include "backends/cuda/qkv_rope.h"
#include "loom/error.h"
#include "loom/quant.h"
#include "ops/projection_params.h"

namespace loom::cuda {

namespace {

void run_qkv_rope(KernelContext& ctx, const ir::Node& node, std::span<const TensorView> in,
                  std::span<TensorView> out) {
  const TensorView& x = in[0];
  const ops::QkvRopeParams p = ops::QkvRopeParams::decode(node, in);
  const quant::GgufFormat* format = quant::find_gguf_format(p.format);
  if (!format) fail(ErrorKind::value, "unknown GGUF block format \"" + p.format + "\"");
  quant::QkvRopeArgs a;
  a.ggml_type = format->ggml_type;
  a.k = x.shape.back();
  a.m = a.k > 0 ? x.numel() / a.k : 0;
  if (a.m == 0) return;
  bool invariant = true;
  for (int i = 0; i < 3; ++i) {
    const TensorView& blocks = in[size_t(1 + i)];
    a.blocks[i] = blocks.data;
    a.weight_bytes[i] = int64_t(blocks.nbytes());
    a.n[i] = blocks.shape[0];
    a.y[i] = out[size_t(i)].as<float>();
    invariant &= ctx.input_invariant(1 + i);
  }
  a.x = x.data;
  a.x_dtype = x.dtype;
  if (p.norm_weight) {
    a.norm_weight = p.norm_weight->data;
    a.norm_eps = float(p.norm_eps);
  }
  a.offset = in[4].data;
  a.offset_i64 = in[4].dtype == DType::i64;
  if (!a.offset_i64 && in[4].dtype != DType::i32)
    fail(ErrorKind::dtype, "CUDA quantized_qkv_rope: offset must be i32 or i64");
  a.head_dim = p.head_dim;
  a.dims = p.rope.rotated(p.head_dim);
  a.interleaved = p.rope.interleaved;
  a.base = p.rope.base;
  a.scale = p.rope.scale;
  a.weights_invariant = invariant;
  quant::cuda_ggml_gemv_qkv_rope(a, ctx.stream);
}

}  // namespace

void register_projection_kernels(Backend& b) {
  b.add_kernel("quantized_qkv_rope", Kernel{"cuda.quantized_qkv_rope", run_qkv_rope, nullptr});
}

}  // namespace loom::cuda
