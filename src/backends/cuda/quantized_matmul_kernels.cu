// CUDA kernel of quantized_matmul (src/ops/quant_ops.cpp), with two tactics:
//  - "gemv": the GEMV of quantized_matmul.cu, launched for each group of up to 8 rows of x.
//    The only tactic for decode (M <= 8): it reads each weight byte once.
//  - "dequant_gemm" (M > 8): the weight expanded into the node's workspace in x's dtype, then
//    one cuBLASLt GEMM with f32 output. For prefill, where the GEMM's tensor cores amortise
//    the expansion over many rows. The runtime times both and keeps the faster.
//  - "dequant_gemm_f16" (M > 8, x f32, int8_activations set): the weight expanded in f16 and
//    x rounded to f16 beside it, then an f16 tensor-core GEMM with f32 accumulation and
//    output. int8_activations lets the kernel round x (the CPU rounds it to int8 per block of
//    32); f16 keeps 11 significant bits, and an f32 GEMM without TF32 runs on CUDA cores at a
//    tenth of the tensor cores' rate.
#include <span>
#include <string>

#include "backends/cuda/cublas_utils.h"
#include "backends/cuda/cuda_backend_impl.h"
#include "backends/cuda/cuda_error.h"
#include "backends/cuda/cuda_kernels.h"
#include "io/ggml_types.h"
#include "loom/error.h"
#include "loom/quant.h"
#include "ops/quant_params.h"

namespace loom::cuda {

namespace {

constexpr size_t kMaxGemmWorkspace = size_t(32) << 20;

const quant::GgufFormat* format_of(const ir::Node& node) {
  return quant::find_gguf_format(node.attrs.get<std::string>("format"));
}

size_t round_up_256(size_t bytes) { return (bytes + 255) / 256 * 256; }

// What the dequant_gemm tactics carry: the GEMM plan, its algorithm, the dtype the weight
// is expanded in, and the workspace's layout: the expanded weight, then (when x is rounded
// to a narrower dtype first) x in that dtype, then cuBLASLt's own workspace.
struct DequantGemm {
  std::shared_ptr<const LtGemm> gemm;
  size_t algo = 0;
  DType dtype = DType::f32;
  size_t weight_bytes = 0;  // rounded up to 256
  size_t x_bytes = 0;       // 0: the GEMM reads x as it is
};

// Groups of up to 8 rows of x, each a GEMV launch; norm and residual go along per row.
void run_gemv(const KernelContext& ctx, const ir::Node& node, std::span<const TensorView> in,
              float* y, int64_t m, int64_t n, int64_t k) {
  auto stream = static_cast<cudaStream_t>(ctx.stream);
  const TensorView& x = in[0];
  const TensorView& blocks = in[1];
  const ops::QuantizedMatmulParams p = ops::QuantizedMatmulParams::decode(node, in);
  const size_t x_row_bytes = storage_bytes(x.dtype, k);
  for (int64_t r = 0; r < m; r += 8) {
    const int64_t rows = std::min<int64_t>(8, m - r);
    quant::GemvEdges edges;
    if (p.norm_weight) {
      edges.norm_weight = p.norm_weight->data;
      edges.norm_eps = float(p.norm_eps);
    }
    if (p.residual) edges.residual = p.residual->as<const float>() + r * n;
    if (p.gate_blocks) edges.gate_blocks = p.gate_blocks->data;
    edges.weights_invariant =
        ctx.input_invariant(1) &&
        (!p.gate_blocks || ctx.input_invariant(node.find_input("gate_blocks")));
    quant::cuda_ggml_gemv(format_of(node)->ggml_type, blocks.data, int64_t(blocks.nbytes()), n, k,
                          static_cast<const char*>(x.data) + size_t(r) * x_row_bytes, x.dtype, rows,
                          y + r * n, stream, edges);
  }
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
  const int64_t m = out[0].numel() / n;
  if (ctx.tactic && ctx.tactic->data) {
    const auto& t = *static_cast<const DequantGemm*>(ctx.tactic->data.get());
    auto* ws = static_cast<char*>(ctx.workspace);
    quant::cuda_ggml_dequantize(format_of(node)->ggml_type, blocks.data, n * k / 32, ws, t.dtype,
                                stream);
    const void* b = x.data;
    if (t.x_bytes > 0) {
      cast_on_device(x.data, x.dtype, ws + t.weight_bytes, t.dtype, m * k, stream);
      b = ws + t.weight_bytes;
    }
    const size_t used = t.weight_bytes + t.x_bytes;
    t.gemm->run(cuda_backend_of(ctx).cublaslt(), ws, b, y, ws + used, ctx.workspace_bytes - used,
                stream, "quantized_matmul", nullptr, t.algo);
    return;
  }
  run_gemv(ctx, node, in, y, m, n, k);
}

// cuBLASLt's candidates for y^T [N, M] = W [N, K] (stored [K, N] column-major, so A^T)
// times x^T [K, M], the weight and x in `dtype`, each named `prefix.algorithm`; none when
// cuBLASLt has no algorithm for the description.
void add_dequant_gemm_tactics(CudaBackend& backend, DType dtype, bool round_x, const TensorView& x,
                              const TensorView& y, int64_t m, int64_t n, int64_t k,
                              const std::string& prefix, std::vector<Tactic>& tactics) {
  GemmDesc d;
  d.dtype = cuda_dtype(dtype);
  d.d_f32 = true;
  d.compute =
      dtype == DType::f32 && tf32_enabled() ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
  d.m = uint64_t(n);
  d.n = uint64_t(m);
  d.k = uint64_t(k);
  d.trans_a = true;
  d.lda = k;
  d.ldb = k;
  d.ldc = n;
  d.workspace_bytes = kMaxGemmWorkspace;
  const size_t elem = storage_bytes(dtype, 1);
  const size_t weight_bytes = round_up_256(storage_bytes(dtype, n * k));
  d.align_a = common_alignment({uint64_t(k) * elem});  // the workspace base is 256-aligned
  // A rounded x lies in the workspace after the weight (256-aligned); else x is read in place.
  d.align_b =
      round_x
          ? common_alignment({uint64_t(k) * elem})
          : common_alignment({uint64_t(reinterpret_cast<uintptr_t>(x.data)), uint64_t(k) * elem});
  d.align_c = common_alignment(
      {uint64_t(reinterpret_cast<uintptr_t>(y.data)), uint64_t(n) * sizeof(float)});
  std::shared_ptr<const LtGemm> gemm;
  try {
    backend.activate();
    gemm = std::make_shared<const LtGemm>(backend.cublaslt(), d);
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::unsupported) return;
    throw;
  }
  const size_t x_bytes = round_x ? round_up_256(storage_bytes(dtype, m * k)) : 0;
  for (size_t i = 0; i < gemm->algorithms(); ++i) {
    auto data = std::make_shared<DequantGemm>();
    data->gemm = gemm;
    data->algo = i;
    data->dtype = dtype;
    data->weight_bytes = weight_bytes;
    data->x_bytes = x_bytes;
    tactics.push_back({prefix + "." + gemm->algorithm_name(i),
                       weight_bytes + x_bytes + gemm->workspace_bytes(i), std::move(data)});
  }
}

// GEMV always; for M > 8 first cuBLASLt's candidates over the expanded weight (the first
// tactic is what runs when tactics are not timed): in f16 with x rounded to f16 when x is f32
// and int8_activations allows rounding it, then in x's dtype. A norm or residual edge runs in
// the GEMV only (the pass fuses them only where M <= 8 is known at compile).
std::vector<Tactic> quantized_matmul_tactics(CudaBackend& backend, const ir::Node& node,
                                             std::span<const TensorView> in,
                                             std::span<const TensorView> out) {
  const Tactic gemv{"gemv", 0, nullptr};
  const TensorView& x = in[0];
  const int64_t k = x.shape.back();
  const int64_t n = in[1].shape[0];
  const int64_t m = k > 0 ? x.numel() / k : 0;
  const ops::QuantizedMatmulParams p = ops::QuantizedMatmulParams::decode(node, in);
  if (m <= 8 || out[0].numel() == 0 || p.has_edges()) return {gemv};
  std::vector<Tactic> tactics;
  if (x.dtype == DType::f32 && p.int8_activations)
    add_dequant_gemm_tactics(backend, DType::f16, true, x, out[0], m, n, k, "dequant_gemm_f16",
                             tactics);
  add_dequant_gemm_tactics(backend, x.dtype, false, x, out[0], m, n, k, "dequant_gemm", tactics);
  tactics.push_back(gemv);
  return tactics;
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
  Kernel matmul{"cuda.quantized_matmul", run_quantized_matmul, blocks_of_32};
  // Kernels are registered by the CudaBackend itself, so `b` is one and outlives them.
  matmul.tactics = [&b](const ir::Node& node, std::span<const TensorView> in,
                        std::span<const TensorView> out) {
    return quantized_matmul_tactics(static_cast<CudaBackend&>(b), node, in, out);
  };
  b.add_kernel("quantized_matmul", std::move(matmul));
}

}  // namespace loom::cuda
