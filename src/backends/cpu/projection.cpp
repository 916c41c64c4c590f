// CPU kernel of quantized_qkv_rope (src/ops/projection_ops.cpp): the three quantized matmuls
// and the two ropes as the unfused kernels compute them (the same functions), so the fused
// node changes no bit of a CPU run.
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

void run_qkv_rope(KernelContext&, const ir::Node& node, std::span<const TensorView> in,
                  std::span<TensorView> out) {
  const TensorView& x = in[0];
  const ops::QkvRopeParams p = ops::QkvRopeParams::decode(node, in);
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

}  // namespace

void register_projection_kernels(Backend& b) {
  b.add_kernel("quantized_qkv_rope", Kernel{"cpu.quantized_qkv_rope", run_qkv_rope, nullptr});
}

}  // namespace loom::cpu
