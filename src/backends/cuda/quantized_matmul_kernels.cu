// CUDA kernel of quantized_matmul (src/ops/quant_ops.cpp): the GEMV of quantized_matmul.cu,
// launched for each group of up to 8 rows of x (prefill runs several launches; a GEMM
// kernel for many rows is not written yet).
#include <span>
#include <string>

#include "backends/cuda/cuda_error.h"
#include "backends/cuda/cuda_kernels.h"
#include "io/ggml_types.h"
#include "loom/error.h"
#include "loom/quant.h"

namespace loom::cuda {

namespace {

const quant::GgufFormat* format_of(const ir::Node& node) {
  return quant::find_gguf_format(node.attrs.get<std::string>("format"));
}

void run_quantized_matmul(KernelContext& ctx, const ir::Node& node, std::span<const TensorView> in,
                          std::span<TensorView> out) {
  const TensorView& x = in[0];
  const TensorView& blocks = in[1];
  const int64_t k = x.shape.back();
  const int64_t n = blocks.shape[0];
  float* y = out[0].as<float>();
  auto stream = static_cast<cudaStream_t>(ctx.stream);
  if (out[0].numel() == 0) return;
  if (k == 0) {
    check_cuda(cudaMemsetAsync(y, 0, out[0].nbytes(), stream), "quantized_matmul");
    return;
  }
  const int64_t m = x.numel() / k;
  const size_t x_row_bytes = storage_bytes(x.dtype, k);
  for (int64_t r = 0; r < m; r += 8) {
    const int64_t rows = std::min<int64_t>(8, m - r);
    quant::cuda_ggml_gemv(format_of(node)->ggml_type, blocks.data, int64_t(blocks.nbytes()), n, k,
                          static_cast<const char*>(x.data) + size_t(r) * x_row_bytes, x.dtype, rows,
                          y + r * n, stream);
  }
}

void run_dequantize(KernelContext& ctx, const ir::Node& node, std::span<const TensorView> in,
                    std::span<TensorView> out) {
  if (out[0].numel() == 0) return;
  quant::cuda_ggml_dequantize(format_of(node)->ggml_type, in[0].data, out[0].numel() / 32,
                              out[0].as<float>(), ctx.stream);
}

bool blocks_of_32(const ir::Node& node, std::span<const TensorView>) {
  const quant::GgufFormat* f = format_of(node);
  return f && f->block_size == 32 && f->ggml_type != uint32_t(io::GgmlType::F32);
}

}  // namespace

void register_quant_kernels(Backend& b) {
  b.add_kernel("dequantize", Kernel{"cuda.dequantize", run_dequantize, blocks_of_32});
  b.add_kernel("quantized_matmul", Kernel{"cuda.quantized_matmul.gemv", run_quantized_matmul,
                                          [](const ir::Node& node, std::span<const TensorView>) {
                                            const quant::GgufFormat* f = format_of(node);
                                            return f && f->block_size == 32;
                                          }});
}

}  // namespace loom::cuda
