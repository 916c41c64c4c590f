// matmul through cuBLASLt (f32 without TF32 unless LOOM_CUDA_TF32=1; f16 and bf16 with f32
// accumulation) and a plain kernel for i32. Row-major C = A B is the column-major
// C^T = B^T A^T, so B is cuBLASLt's first operand. Batch dims broadcast: the innermost
// batch group is one strided-batched call (a stride of 0 repeats a matrix), outer groups a
// loop of calls; with an unbatched B, A's batches fold into M (one tall GEMM). A bias [N] is
// one value per row of C^T: cuBLASLt's bias epilogue adds it while C is written. For decode
// (at most 8 rows of f16/bf16 times a weight stored [N, K]) the GEMV of dense_gemv.cu is a
// second kernel, timed against cuBLASLt's algorithms.
#include <algorithm>
#include <cstdlib>
#include <memory>
#include <vector>

#include "backends/cuda/cublas_utils.h"
#include "backends/cuda/cuda_backend_impl.h"
#include "backends/cuda/cuda_error.h"
#include "backends/cuda/cuda_kernels.h"
#include "backends/cuda/dense_gemv.h"
#include "backends/cuda/device/indexing.cuh"
#include "backends/cuda/device/launch.cuh"
#include "backends/cuda/device/types.cuh"
#include "backends/strided_views.h"
#include "ops/matmul_params.h"

namespace loom::cuda {

namespace {

// How a node's batches map onto GEMM calls.
struct BatchPlan {
  int64_t m = 0, n = 0, k = 0;
  bool transpose_a = false, transpose_b = false;
  int64_t inner = 1;                  // matrices per call
  int64_t inner_a = 0, inner_b = 0;   // their strides (elements)
  Extents outer_extents;              // calls, as a grid of batch dims
  Strides outer_a, outer_b, outer_c;  // offsets per step of each outer dim
};

BatchPlan plan_batches(const ir::Node& node, const TensorView& a, const TensorView& b,
                       const TensorView& c) {
  BatchPlan p;
  const ops::MatmulParams params = ops::MatmulParams::decode(node);
  size_t ra = a.shape.size(), rb = b.shape.size(), rc = c.shape.size();
  p.m = c.shape[rc - 2];
  p.n = c.shape[rc - 1];
  p.k = params.transpose_a ? a.shape[ra - 2] : a.shape[ra - 1];
  // A transposed view is read as stored: cuBLASLt's transpose op flips instead of a copy.
  p.transpose_a = operand_transposed(params.transpose_a, a);
  p.transpose_b = operand_transposed(params.transpose_b, b);
  Extents out_batch(c.shape.begin(), c.shape.end() - 2);
  Extents a_batch(a.shape.begin(), a.shape.end() - 2), b_batch(b.shape.begin(), b.shape.end() - 2);
  if (numel(b_batch) == 1 && !p.transpose_a) {
    p.m *= numel(out_batch);
    return p;
  }
  // Strides in whole matrices, 0 on broadcast dims; then merged like elementwise operands.
  Strides sa = broadcast_strides(a_batch, out_batch), sb = broadcast_strides(b_batch, out_batch);
  Strides sc = contiguous_strides(out_batch);
  for (auto& s : sa) s *= p.m * p.k;
  for (auto& s : sb) s *= p.k * p.n;
  for (auto& s : sc) s *= p.m * p.n;
  auto ix = make_indexer<3>(out_batch, {sa, sb, sc});
  if (ix.rank == 0) return p;
  int last = ix.rank - 1;
  p.inner = ix.extent[last];
  p.inner_a = ix.stride[0][last];
  p.inner_b = ix.stride[1][last];
  for (int d = 0; d < last; ++d) {
    p.outer_extents.push_back(ix.extent[d]);
    p.outer_a.push_back(ix.stride[0][d]);
    p.outer_b.push_back(ix.stride[1][d]);
    p.outer_c.push_back(ix.stride[2][d]);
  }
  return p;
}

GemmDesc gemm_desc(const BatchPlan& p, DType dtype, size_t workspace_bytes) {
  GemmDesc d;
  d.dtype = cuda_dtype(dtype);
  d.compute =
      dtype == DType::f32 && tf32_enabled() ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
  // Column-major D = C^T [n, m] = op(B^T) [n, k] * op(A^T) [k, m].
  d.m = uint64_t(p.n);
  d.n = uint64_t(p.m);
  d.k = uint64_t(p.k);
  d.trans_a = p.transpose_b;  // B stored [k, n] row-major is [n, k] column-major
  d.trans_b = p.transpose_a;
  d.lda = p.transpose_b ? p.k : p.n;
  d.ldb = p.transpose_a ? p.m : p.k;
  d.ldc = p.n;
  d.batch = int32_t(p.inner);
  d.stride_a = p.inner_b;
  d.stride_b = p.inner_a;
  d.stride_c = p.m * p.n;
  d.workspace_bytes = workspace_bytes;
  return d;
}

// Every row of c = bias: the product of K = 0 is zeros, and 0 + bias is bias in every
// float dtype (as the CPU computes it).
template <class T>
__global__ void bias_rows_kernel(const T* __restrict__ bias, T* __restrict__ c, int64_t total,
                                 int64_t n) {
  int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += stride)
    c[i] = bias[i % n];
}

void fill_rows_with_bias(const TensorView& bias, TensorView& c, cudaStream_t stream) {
  int64_t total = c.numel(), n = c.shape.back();
  dispatch_bytes(element_bytes(c.dtype), [&](auto tag) {
    using T = decltype(tag);
    bias_rows_kernel<T><<<std::min(blocks_for(total, kThreads), 65536u), kThreads, 0, stream>>>(
        bias.as<const T>(), c.as<T>(), total, n);
  });
  check_launch("matmul (k = 0, bias)");
}

// cuBLASLt's recommended workspace on Hopper: the most any candidate algorithm may use.
constexpr size_t kMaxWorkspace = size_t(32) << 20;

// A node's GEMM: how its batches map onto calls, and the description (alignments included,
// from the views' addresses and strides).
struct MatmulGemm {
  BatchPlan batches;
  GemmDesc desc;
};

MatmulGemm describe(const ir::Node& node, std::span<const TensorView> in, const TensorView& c,
                    size_t workspace_bytes) {
  const TensorView &a = in[0], &b = in[1];
  MatmulGemm g;
  BatchPlan& p = g.batches;
  p = plan_batches(node, a, b, c);
  if (p.inner > INT32_MAX) fail(ErrorKind::unsupported, "matmul: too many batched matrices");
  GemmDesc& desc = g.desc;
  desc = gemm_desc(p, c.dtype, workspace_bytes);
  desc.bias = in.size() == 3;
  uint64_t elem_bytes = storage_bytes(c.dtype, 1);
  // Alignments over every call's pointers: the base, the batch strides, the row pitch.
  auto alignment = [&](const void* base, const Strides& outer, int64_t inner, int64_t ld) {
    uint32_t align = common_alignment({uint64_t(reinterpret_cast<uintptr_t>(base)),
                                       uint64_t(inner) * elem_bytes, uint64_t(ld) * elem_bytes});
    for (int64_t s : outer) align = std::min(align, common_alignment({uint64_t(s) * elem_bytes}));
    return align;
  };
  desc.align_a = alignment(b.data, p.outer_b, p.inner > 1 ? p.inner_b : 0, desc.lda);
  desc.align_b = alignment(a.data, p.outer_a, p.inner > 1 ? p.inner_a : 0, desc.ldb);
  desc.align_c = alignment(c.data, p.outer_c, p.inner > 1 ? p.m * p.n : 0, desc.ldc);
  return g;
}

// What a tactic of the cuBLASLt kernel carries: the node's plan and one algorithm of it.
struct CublasTactic {
  BatchPlan batches;
  std::shared_ptr<const LtGemm> gemm;
  size_t algo = 0;
};

void launch_gemm(CudaBackend& backend, cudaStream_t stream, const BatchPlan& p, const LtGemm& gemm,
                 size_t algo, std::span<const TensorView> in, TensorView& c, void* workspace,
                 size_t workspace_bytes) {
  size_t elem = storage_bytes(c.dtype, 1);
  auto* pa = static_cast<const char*>(in[0].data);
  auto* pb = static_cast<const char*>(in[1].data);
  auto* pc = static_cast<char*>(c.data);
  const void* bias = in.size() == 3 ? in[2].data : nullptr;
  int64_t calls = numel(p.outer_extents);
  for (int64_t call = 0; call < calls; ++call) {
    int64_t oa = 0, ob = 0, oc = 0, rest = call;
    for (size_t d = p.outer_extents.size(); d-- > 0;) {
      int64_t i = rest % p.outer_extents[d];
      rest /= p.outer_extents[d];
      oa += i * p.outer_a[d];
      ob += i * p.outer_b[d];
      oc += i * p.outer_c[d];
    }
    gemm.run(backend.cublaslt(), pb + ob * int64_t(elem), pa + oa * int64_t(elem),
             pc + oc * int64_t(elem), workspace, workspace_bytes, stream, "matmul", bias, algo);
  }
}

// The heuristic's candidate algorithms for the node, as tactics (none when cuBLASLt has no
// algorithm for it, so the planner looks for another kernel). Empty products get one tactic
// that runs no GEMM.
std::vector<Tactic> cublas_tactics(CudaBackend& backend, const ir::Node& node,
                                   std::span<const TensorView> in,
                                   std::span<const TensorView> out) {
  const TensorView& c = out[0];
  BatchPlan p = plan_batches(node, in[0], in[1], c);
  if (c.numel() == 0 || p.k == 0) return {Tactic{}};  // no GEMM: zeros or the bias
  MatmulGemm g;
  std::shared_ptr<const LtGemm> gemm;
  try {
    g = describe(node, in, c, kMaxWorkspace);
    backend.activate();  // the heuristic runs on the backend's GPU
    gemm = std::make_shared<const LtGemm>(backend.cublaslt(), g.desc);
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::unsupported) return {};
    throw;
  }
  std::vector<Tactic> tactics;
  for (size_t i = 0; i < gemm->algorithms(); ++i) {
    auto data = std::make_shared<CublasTactic>();
    data->batches = g.batches;
    data->gemm = gemm;
    data->algo = i;
    tactics.push_back({gemm->algorithm_name(i), gemm->workspace_bytes(i), std::move(data)});
  }
  return tactics;
}

void run_float_matmul(KernelContext& ctx, const ir::Node& node, std::span<const TensorView> in,
                      std::span<TensorView> out) {
  TensorView& c = out[0];
  if (c.numel() == 0) return;
  cudaStream_t stream = stream_of(ctx);
  CudaBackend& backend = cuda_backend_of(ctx);
  if (ctx.tactic && ctx.tactic->data) {
    // Planned: the description and algorithm were made at plan time, the workspace is in the
    // arena. Nothing is allocated or formatted here.
    const auto& t = *static_cast<const CublasTactic*>(ctx.tactic->data.get());
    launch_gemm(backend, stream, t.batches, *t.gemm, t.algo, in, c, ctx.workspace,
                ctx.workspace_bytes);
    return;
  }
  BatchPlan p = plan_batches(node, in[0], in[1], c);
  const bool has_bias = in.size() == 3;
  if (p.k == 0) {  // an empty sum: zeros (all-zero bits in every float dtype), plus the bias
    if (has_bias) {
      fill_rows_with_bias(in[2], c, stream);
    } else {
      check_cuda(cudaMemsetAsync(c.data, 0, c.nbytes(), stream), "matmul (k = 0)");
    }
    return;
  }
  // Outside a plan (evaluation of one node): the heuristic's first algorithm with the
  // stream's own workspace, the description cached per node.
  CudaBackend::Workspace ws = backend.workspace(stream);
  MatmulGemm g = describe(node, in, c, ws.bytes);
  std::shared_ptr<void> local;
  std::shared_ptr<void>& slot = ctx.state ? *ctx.state : local;
  auto* gemm = static_cast<LtGemm*>(slot.get());
  if (!gemm || !(gemm->desc() == g.desc)) {
    auto made = std::make_shared<LtGemm>(backend.cublaslt(), g.desc);
    gemm = made.get();
    slot = std::move(made);
  }
  launch_gemm(backend, stream, g.batches, *gemm, 0, in, c, ws.data, ws.bytes);
}

// i32: one output per thread, products wrapping modulo 2^32 as on the CPU.
__global__ void matmul_i32_kernel(const uint32_t* __restrict__ a, const uint32_t* __restrict__ b,
                                  uint32_t* __restrict__ c, int64_t batches, int64_t m, int64_t n,
                                  int64_t k, int64_t a_row, int64_t a_col, int64_t b_row,
                                  int64_t b_col, StridedIndexer<2> batch) {
  int64_t total = batches * m * n, stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; idx < total; idx += stride) {
    int64_t bi = idx / (m * n), rem = idx - bi * m * n;
    int64_t i = rem / n, j = rem - i * n;
    int64_t off[2];
    batch.offsets(bi, off);
    const uint32_t* pa = a + off[0] + i * a_row;
    const uint32_t* pb = b + off[1] + j * b_col;
    uint32_t acc = 0;
    for (int64_t kk = 0; kk < k; ++kk) acc += pa[kk * a_col] * pb[kk * b_row];
    c[idx] = acc;
  }
}

void run_i32_matmul(KernelContext& ctx, const ir::Node& node, std::span<const TensorView> in,
                    std::span<TensorView> out) {
  const TensorView &a = in[0], &b = in[1];
  TensorView& c = out[0];
  if (c.numel() == 0) return;
  const ops::MatmulParams params = ops::MatmulParams::decode(node);
  size_t ra = a.shape.size(), rc = c.shape.size();
  int64_t m = c.shape[rc - 2], n = c.shape[rc - 1];
  int64_t k = params.transpose_a ? a.shape[ra - 2] : a.shape[ra - 1];
  bool ta = operand_transposed(params.transpose_a, a),
       tb = operand_transposed(params.transpose_b, b);
  Extents out_batch(c.shape.begin(), c.shape.end() - 2);
  Strides sa = broadcast_strides(Extents(a.shape.begin(), a.shape.end() - 2), out_batch);
  Strides sb = broadcast_strides(Extents(b.shape.begin(), b.shape.end() - 2), out_batch);
  for (auto& s : sa) s *= m * k;
  for (auto& s : sb) s *= k * n;
  auto batch = make_indexer<2>(out_batch, {sa, sb});
  int64_t batches = numel(out_batch);
  int64_t a_row = ta ? 1 : k, a_col = ta ? m : 1, b_row = tb ? 1 : n, b_col = tb ? k : 1;
  matmul_i32_kernel<<<std::min(blocks_for(batches * m * n, kThreads), 65536u), kThreads, 0,
                      stream_of(ctx)>>>(a.as<const uint32_t>(), b.as<const uint32_t>(),
                                        c.as<uint32_t>(), batches, m, n, k, a_row, a_col, b_row,
                                        b_col, batch);
  check_launch("matmul (i32)");
}

}  // namespace

void register_matmul_kernels(Backend& b) {
  Kernel cublaslt{"cuda.matmul.cublaslt", run_float_matmul,
                  [](const ir::Node&, std::span<const TensorView> in) {
                    return is_float(in[0].dtype) && matmul_reads_views(in);
                  },
                  nullptr, true};
  // Kernels are registered by the CudaBackend itself, so `b` is one and outlives them.
  cublaslt.tactics = [&b](const ir::Node& node, std::span<const TensorView> in,
                          std::span<const TensorView> out) {
    return cublas_tactics(static_cast<CudaBackend&>(b), node, in, out);
  };
  b.add_kernel("matmul", std::move(cublaslt));
  // Few rows of f16/bf16 times a weight stored [N, K]: timed against cuBLASLt's algorithms.
  b.add_kernel("matmul", dense_gemv_kernel());
  b.add_kernel("matmul", Kernel{"cuda.matmul.i32", run_i32_matmul,
                                [](const ir::Node&, std::span<const TensorView> in) {
                                  return in[0].dtype == DType::i32 && matmul_reads_views(in);
                                },
                                nullptr, true});
}

}  // namespace loom::cuda
