// CPU kernel of quantized_qkv_rope (src/ops/projection_ops.cpp): the three quantized matmuls
// and the two ropes as the unfused kernels compute them (the same functions), so the fused
// node changes no bit of a CPU run.
#include <algorithm>
#include <cstddef>
#include <span>
#include <vector>

#include "backends/cpu/cpu_kernels.h"
#include "backends/cpu/dispatch.h"
#include "loom/error.h"
#include "loom/quant.h"
#include "ops/projection_params.h"

namespace loom::cpu {

namespace {

// q, k, v into out[0..2] (all f32 [m, n]); quantized_qkv_rope's inputs from in[first] on.
void qkv_rope(const ir::Node& node, std::span<const TensorView> all_inputs, size_t first,
              std::span<TensorView> out) {
  const ops::QkvRopeParams p = ops::QkvRopeParams::decode(node, all_inputs);
  const std::span<const TensorView> in = all_inputs.subspan(first);
  const TensorView& x = in[0];
  const quant::GgufFormat* format = quant::find_gguf_format(p.format);
  if (!format) fail(ErrorKind::value, "unknown GGUF block format \"" + p.format + "\"");
  const int64_t k = x.shape.back();
  const int64_t m = k > 0 ? x.numel() / k : 0;
  const void* xs = x.data;
  std::vector<std::byte> normalized;
  if (p.norm_weight && k > 0) {
    normalized.resize(x.nbytes());
    rms_norm_rows(x.dtype, x.data, p.norm_weight->data, normalized.data(), m, k, float(p.norm_eps));
    xs = normalized.data();
  }
  quant::GemmOptions options;
  options.quantize_activations = p.int8_activations;
  const int64_t offset = load_index(in[4].data, in[4].dtype, 0);
  for (size_t i = 0; i < 3; ++i) {
    const TensorView& blocks = in[1 + i];
    const int64_t n = blocks.shape[0];
    float* y = out[i].as<float>();
    if (k == 0) {
      for (int64_t e = 0; e < out[i].numel(); ++e) y[e] = 0.f;
    } else {
      quant::ggml_matmul(format->ggml_type, blocks.data, int64_t(blocks.nbytes()), n, k, xs,
                         x.dtype, m, y, options);
    }
    if (i == 2 || out[i].numel() == 0) continue;
    // Each row's heads at one position: [rows * heads, 1, head_dim].
    TensorView heads = out[i];
    heads.shape = {out[i].numel() / p.head_dim, 1, p.head_dim};
    heads.strides = contiguous_strides(heads.shape);
    rope_in_place(heads, offset, p.rope);
  }
}

void run_qkv_rope(KernelContext&, const ir::Node& node, std::span<const TensorView> in,
                  std::span<TensorView> out) {
  qkv_rope(node, in, 0, out);
}

// k and v go to the workspace, then into their cache windows as slice_update_inplace writes
// them: the caches get the bits of the unfused graph.
void run_qkv_rope_cache(KernelContext& ctx, const ir::Node& node, std::span<const TensorView> in,
                        std::span<TensorView> out) {
  std::vector<TensorView> rows(3);
  rows[0] = out[2];
  const int64_t m = out[2].shape.back() > 0 ? out[2].numel() / out[2].shape.back() : 0;
  const size_t needed = size_t(m * (in[4].shape[0] + in[5].shape[0])) * sizeof(float);
  std::vector<float> own;  // outside a plan (no workspace)
  float* scratch = static_cast<float*>(ctx.workspace);
  if (!scratch || ctx.workspace_bytes < needed) {
    own.resize(needed / sizeof(float) + 1);
    scratch = own.data();
  }
  for (int c = 0; c < 2; ++c) {
    const TensorView& blocks = in[size_t(4 + c)];
    TensorView& r = rows[size_t(1 + c)];
    r.dtype = DType::f32;
    r.shape = out[2].shape;
    r.shape.back() = blocks.shape[0];
    r.strides = contiguous_strides(r.shape);
    r.data = scratch;
    scratch += r.numel();
  }
  qkv_rope(node, in, 2, rows);
  for (int c = 0; c < 2; ++c) {
    TensorView update = rows[size_t(1 + c)];
    update.shape = node.attrs.get<std::vector<int64_t>>(c == 0 ? "k_window" : "v_window");
    update.strides = contiguous_strides(update.shape);
    write_window(out[size_t(c)], update, in[7]);
  }
}

// The workspace holds k and v.
std::vector<Tactic> qkv_rope_cache_tactics(const ir::Node& node, std::span<const TensorView> in,
                                           std::span<const TensorView> out) {
  const int64_t rows = out[2].shape.back() > 0 ? out[2].numel() / out[2].shape.back() : 0;
  const int64_t n = in[4].shape[0] + in[5].shape[0];
  (void)node;
  return {Tactic{"", size_t(std::max<int64_t>(rows * n, 1)) * sizeof(float), nullptr}};
}

}  // namespace

void register_projection_kernels(Backend& b) {
  b.add_kernel("quantized_qkv_rope", Kernel{"cpu.quantized_qkv_rope", run_qkv_rope, nullptr});
  b.add_kernel(
      "quantized_qkv_rope_cache",
      Kernel{"cpu.quantized_qkv_rope_cache", run_qkv_rope_cache, nullptr, qkv_rope_cache_tactics});
}

}  // namespace loom::cpu
