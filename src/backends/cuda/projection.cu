// CUDA kernel of quantized_qkv_rope (src/ops/projection_ops.cpp): one GEMV launch (per group of
// 8 rows of x) computes q, k and v and rotates q and k in its epilogue (quantized_matmul.cu).
// The fuse_qkv_rope pass makes the node only where this kernel takes its shapes.
#include <span>
#include <string>
#include <vector>

#include "backends/cuda/cuda_backend_impl.h"
#include "backends/cuda/cuda_kernels.h"
#include "backends/cuda/qkv_rope.h"
#include "backends/strided_views.h"
#include "loom/error.h"
#include "loom/quant.h"
#include "ops/projection_params.h"

namespace loom::cuda {

namespace {

// quantized_qkv_rope's inputs from in[first] on; `a` may already hold the cache windows.
void launch(KernelContext& ctx, const ir::Node& node, std::span<const TensorView> all_inputs,
            size_t first, std::span<TensorView> out, quant::QkvRopeArgs& a) {
  const ops::QkvRopeParams p = ops::QkvRopeParams::decode(node, all_inputs);
  const std::span<const TensorView> in = all_inputs.subspan(first);
  const TensorView& x = in[0];
  const quant::GgufFormat* format = quant::find_gguf_format(p.format);
  if (!format) fail(ErrorKind::value, "unknown GGUF block format \"" + p.format + "\"");
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
    if (size_t(i) < out.size()) a.y[i] = out[size_t(i)].as<float>();
    invariant &= ctx.input_invariant(int(first) + 1 + i);
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

void run_qkv_rope(KernelContext& ctx, const ir::Node& node, std::span<const TensorView> in,
                  std::span<TensorView> out) {
  quant::QkvRopeArgs a;
  launch(ctx, node, in, 0, out, a);
}

// k and v go straight into their cache windows from the GEMV's epilogue; only q is an output
// of the arena (out[2]).
void run_qkv_rope_cache(KernelContext& ctx, const ir::Node& node, std::span<const TensorView> in,
                        std::span<TensorView> out) {
  quant::QkvRopeArgs a;
  for (int c = 0; c < 2; ++c) {
    const TensorView& cache = out[size_t(c)];
    const std::vector<int64_t> window =
        node.attrs.get<std::vector<int64_t>>(c == 0 ? "k_window" : "v_window");
    if (cache.dtype != DType::f32 || window.size() != cache.shape.size() || window.size() > 4 ||
        !is_contiguous(cache))
      fail(ErrorKind::unsupported,
           "CUDA quantized_qkv_rope_cache: contiguous f32 caches of rank at most 4");
    a.caches[c].data = cache.as<float>();
    a.caches[c].rank = int(window.size());
    for (size_t d = 0; d < window.size(); ++d) {
      a.caches[c].window[d] = window[d];
      a.caches[c].extent[d] = cache.shape[d];
    }
  }
  const TensorView& starts = in[7];
  if (starts.dtype != DType::i32 && starts.dtype != DType::i64)
    fail(ErrorKind::dtype, "CUDA quantized_qkv_rope_cache: starts must be i32 or i64");
  a.starts = starts.data;
  a.starts_i64 = starts.dtype == DType::i64;
  TensorView q[1] = {out[2]};
  launch(ctx, node, in, 2, q, a);
}

}  // namespace

void register_projection_kernels(Backend& b) {
  b.add_kernel("quantized_qkv_rope", Kernel{"cuda.quantized_qkv_rope", run_qkv_rope, nullptr});
  b.add_kernel("quantized_qkv_rope_cache",
               Kernel{"cuda.quantized_qkv_rope_cache", run_qkv_rope_cache, nullptr});
}

}  // namespace loom::cuda
