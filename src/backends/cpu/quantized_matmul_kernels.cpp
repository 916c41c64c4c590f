// CPU kernels of the ops in src/ops/quant_ops.cpp over the GGUF-block kernel.
#include <span>

#include "backends/cpu/cpu_kernels.h"
#include "io/ggml_dequantize.h"
#include "loom/error.h"
#include "loom/quant.h"

namespace loom::cpu {

namespace {

uint32_t ggml_type_of(const ir::Node& node) {
  const std::string& name = node.attrs.get<std::string>("format");
  const quant::GgufFormat* f = quant::find_gguf_format(name);
  if (!f) fail(ErrorKind::value, "unknown GGUF block format \"" + name + "\"");
  return f->ggml_type;
}

void run_quantized_matmul(KernelContext&, const ir::Node& node, std::span<const TensorView> in,
                          std::span<TensorView> out) {
  const TensorView& x = in[0];
  const TensorView& blocks = in[1];
  const int64_t k = x.shape.back();
  const int64_t m = k > 0 ? x.numel() / k : 0;
  const int64_t n = blocks.shape[0];
  if (k == 0) {
    for (int64_t i = 0; i < out[0].numel(); ++i) out[0].as<float>()[i] = 0.f;
    return;
  }
  quant::GemmOptions options;
  options.quantize_activations = node.attrs.get_or<bool>("int8_activations", true);
  quant::ggml_matmul(ggml_type_of(node), blocks.data, int64_t(blocks.nbytes()), n, k, x.data,
                     x.dtype, m, out[0].as<float>(), options);
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
