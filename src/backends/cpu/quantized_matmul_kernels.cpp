// CPU kernels of the ops in src/ops/quant_ops.cpp over the GGUF-block kernel.
#include <cmath>
#include <cstddef>
#include <span>
#include <vector>

#include "backends/cpu/cpu_kernels.h"
#include "io/ggml_dequantize.h"
#include "loom/error.h"
#include "loom/quant.h"
#include "ops/quant_params.h"

namespace loom::cpu {

namespace {

uint32_t ggml_type_of(const ir::Node& node) {
  const std::string& name = node.attrs.get<std::string>("format");
  const quant::GgufFormat* f = quant::find_gguf_format(name);
  if (!f) fail(ErrorKind::value, "unknown GGUF block format \"" + name + "\"");
  return f->ggml_type;
}

// With a norm_weight, x is normalised first into a temporary (the same arithmetic as the
// rms_norm kernel, so fusing changes no bit); with gate_blocks, y = silu(x Gᵀ) * (x Wᵀ); a
// residual is added to y last.
void run_quantized_matmul(KernelContext&, const ir::Node& node, std::span<const TensorView> in,
                          std::span<TensorView> out) {
  const TensorView& x = in[0];
  const TensorView& blocks = in[1];
  const int64_t k = x.shape.back();
  const int64_t m = k > 0 ? x.numel() / k : 0;
  const int64_t n = blocks.shape[0];
  float* y = out[0].as<float>();
  const ops::QuantizedMatmulParams p = ops::QuantizedMatmulParams::decode(node, in);
  const TensorView* norm_weight = p.norm_weight;
  const TensorView* residual = p.residual;
  const TensorView* gate_blocks = p.gate_blocks;
  std::vector<float> gate;
  if (gate_blocks) gate.assign(size_t(out[0].numel()), 0.f);
  if (k == 0) {
    for (int64_t i = 0; i < out[0].numel(); ++i) y[i] = 0.f;
  } else {
    const void* xs = x.data;
    std::vector<std::byte> normalized;
    if (norm_weight) {
      normalized.resize(x.nbytes());
      rms_norm_rows(x.dtype, x.data, norm_weight->data, normalized.data(), m, k, float(p.norm_eps));
      xs = normalized.data();
    }
    quant::GemmOptions options;
    options.quantize_activations = p.int8_activations;
    quant::ggml_matmul(ggml_type_of(node), blocks.data, int64_t(blocks.nbytes()), n, k, xs, x.dtype,
                       m, y, options);
    if (gate_blocks)
      quant::ggml_matmul(ggml_type_of(node), gate_blocks->data, int64_t(gate_blocks->nbytes()), n,
                         k, xs, x.dtype, m, gate.data(), options);
  }
  // SwiGLU as the unfused silu and mul kernels compute it, so fusing changes no bit.
  for (size_t i = 0; i < gate.size(); ++i) {
    const float g = gate[i];
    y[i] = (g / (1.0f + std::exp(-g))) * y[i];
  }
  if (residual) {
    const float* r = residual->as<const float>();
    for (int64_t i = 0; i < out[0].numel(); ++i) y[i] += r[i];
  }
}

void run_dequantize(KernelContext&, const ir::Node& node, std::span<const TensorView> in,
                    std::span<TensorView> out) {
  const TensorView& blocks = in[0];
  io::dequantize_ggml(io::GgmlType(ggml_type_of(node)),
                      std::span(static_cast<const std::byte*>(blocks.data), blocks.nbytes()),
                      out[0].numel(), out[0].as<float>());
}

}  // namespace

void register_quant_kernels(Backend& b) {
  b.add_kernel("quantized_matmul",
               Kernel{"cpu.quantized_matmul.ggml", run_quantized_matmul, nullptr});
  b.add_kernel("dequantize", Kernel{"cpu.dequantize.ggml", run_dequantize, nullptr});
}

}  // namespace loom::cpu
