// CPU matmul: OpenBLAS sgemm for f32; f16/bf16 widened to f32 in panels around the same
// sgemm; a plain loop for i32. Batch dims broadcast.
#include <cblas.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <span>
#include <vector>

#include "backends/cpu/cpu_kernels.h"
#include "backends/cpu/dispatch.h"
#include "backends/cpu/simd.h"
#include "backends/strided_views.h"
#include "ops/matmul_params.h"

namespace loom::cpu {
namespace {

struct GemmShape {
  int64_t m = 0, n = 0, k = 0;
  bool transpose_a = false, transpose_b = false;
  int64_t a_size() const { return m * k; }
  int64_t b_size() const { return k * n; }
};

// Index of an operand's matrix for output batch `flat`; dims of extent 1 broadcast.
int64_t operand_batch(int64_t flat, std::span<const int64_t> out_batch,
                      std::span<const int64_t> in_batch) {
  int64_t index = 0, stride = 1;
  for (size_t i = 0; i < out_batch.size(); ++i) {
    int64_t extent = out_batch[out_batch.size() - 1 - i];
    int64_t coord = flat % extent;
    flat /= extent;
    if (i < in_batch.size()) {
      int64_t in_extent = in_batch[in_batch.size() - 1 - i];
      if (in_extent != 1) index += coord * stride;
      stride *= in_extent;
    }
  }
  return index;
}

// Walks the batches of a node, calling fn(a_matrix, b_matrix, c_matrix, shape) with
// element offsets. When b has no batch (a linear layer), a's batches are folded into M
// so that BLAS sees one tall GEMM instead of many small ones.
template <class Fn>
void for_each_batch(const ir::Node& node, std::span<const TensorView> in, const TensorView& c,
                    Fn&& fn) {
  const TensorView& a = in[0];
  const TensorView& b = in[1];
  GemmShape s;
  const ops::MatmulParams params = ops::MatmulParams::decode(node);
  const size_t ra = a.shape.size(), rb = b.shape.size(), rc = c.shape.size();
  s.m = c.shape[rc - 2];
  s.n = c.shape[rc - 1];
  s.k = params.transpose_a ? a.shape[ra - 2] : a.shape[ra - 1];
  // A transposed view is read as stored: the flag flips instead of a copy being made.
  s.transpose_a = operand_transposed(params.transpose_a, a);
  s.transpose_b = operand_transposed(params.transpose_b, b);
  std::span<const int64_t> out_batch(c.shape.data(), rc - 2);
  std::span<const int64_t> a_batch(a.shape.data(), ra - 2);
  std::span<const int64_t> b_batch(b.shape.data(), rb - 2);
  int64_t batches = 1;
  for (int64_t e : out_batch) batches *= e;
  int64_t b_batches = 1;
  for (int64_t e : b_batch) b_batches *= e;
  if (b_batches == 1 && !s.transpose_a) {
    s.m *= batches;
    batches = 1;
  }
  if (s.m > INT_MAX || s.n > INT_MAX || s.k > INT_MAX)
    fail(ErrorKind::unsupported, "matmul: a dimension exceeds the 32-bit BLAS interface");
  for (int64_t i = 0; i < batches; ++i) {
    int64_t ia = operand_batch(i, out_batch, a_batch);
    int64_t ib = operand_batch(i, out_batch, b_batch);
    fn(ia * s.a_size(), ib * s.b_size(), i * s.m * s.n, s);
  }
}

// One row of A (M = 1: a GEMV, the decode step's shape) with B [K, N] goes to Loom's own
// AVX2 / AVX-512 kernel (simd.h simd_gemv); otherwise to sgemv, which OpenBLAS runs about
// twice as fast as sgemm at M = 1. A's row is contiguous either way ([1, K], or [K, 1]
// when transposed).
void sgemm(const GemmShape& s, const float* a, const float* b, int64_t ldb, float* c) {
  if (s.m == 1 && !s.transpose_b && simd_gemv(a, b, ldb, s.k, s.n, c)) return;
  if (s.m == 1) {
    // y[n] = sum_k a[k] B[k, n]: B^T x for B [K, N] row-major, B x for B stored [N, K].
    cblas_sgemv(CblasRowMajor, s.transpose_b ? CblasNoTrans : CblasTrans,
                int(s.transpose_b ? s.n : s.k), int(s.transpose_b ? s.k : s.n), 1.0f, b, int(ldb),
                a, 1, 0.0f, c, 1);
    return;
  }
  cblas_sgemm(CblasRowMajor, s.transpose_a ? CblasTrans : CblasNoTrans,
              s.transpose_b ? CblasTrans : CblasNoTrans, int(s.m), int(s.n), int(s.k), 1.0f, a,
              int(s.transpose_a ? s.m : s.k), b, int(ldb), 0.0f, c, int(s.n));
}

// Per-thread f32 scratch for widened 16-bit operands; it grows to the largest node and is
// then reused, so steady-state runs do not allocate.
float* scratch(int slot, size_t count) {
  thread_local std::vector<float> buffers[3];
  std::vector<float>& v = buffers[slot];
  if (v.size() < count) v.resize(count);
  return v.data();
}

// Copies a rows x cols block (source rows `src_ld` apart) into a dense f32 block.
template <class T>
void widen_rows(const T* src, int64_t src_ld, int64_t rows, int64_t cols, float* dst) {
  parallel_for(rows, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(cols, 1)),
               [&](int64_t r) {
                 const T* s = src + r * src_ld;
                 float* d = dst + r * cols;
                 for (int64_t j = 0; j < cols; ++j) d[j] = load(s + j);
               });
}

template <class T>
void narrow_rows(const float* src, int64_t rows, int64_t cols, T* dst, int64_t dst_ld) {
  parallel_for(rows, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(cols, 1)),
               [&](int64_t r) {
                 const float* s = src + r * cols;
                 T* d = dst + r * dst_ld;
                 for (int64_t j = 0; j < cols; ++j) store(d + j, s[j]);
               });
}

// f32 elements of one widened B panel; wide enough for BLAS to run at full speed, small
// enough that a large weight is never widened whole.
constexpr int64_t kPanelFloats = int64_t(1) << 22;

template <class T>
void gemm_widened(const GemmShape& s, const T* a, const T* b, T* c) {
  float* fa = scratch(0, size_t(s.a_size()));
  if (s.transpose_a)
    widen_rows(a, s.m, s.k, s.m, fa);
  else
    widen_rows(a, s.k, s.m, s.k, fa);
  const int64_t panel = std::min(s.n, std::max<int64_t>(64, kPanelFloats / s.k));
  float* fb = scratch(1, size_t(panel * s.k));
  float* fc = scratch(2, size_t(panel * s.m));
  for (int64_t n0 = 0; n0 < s.n; n0 += panel) {
    GemmShape p = s;
    p.n = std::min(panel, s.n - n0);
    if (s.transpose_b)  // b is [N, K]: the panel is p.n whole rows
      widen_rows(b + n0 * s.k, s.k, p.n, s.k, fb);
    else  // b is [K, N]: the panel is p.n columns of every row
      widen_rows(b + n0, s.n, s.k, p.n, fb);
    sgemm(p, fa, fb, s.transpose_b ? s.k : p.n, fc);
    narrow_rows(fc, s.m, p.n, c + n0, s.n);
  }
}

void run_float_matmul(KernelContext&, const ir::Node& node, std::span<const TensorView> in,
                      std::span<TensorView> out) {
  TensorView& c = out[0];
  if (c.numel() == 0) return;
  dispatch_float(c.dtype, [&](auto tag) {
    using T = decltype(tag);
    const T* a = in[0].as<const T>();
    const T* b = in[1].as<const T>();
    T* cp = c.as<T>();
    for_each_batch(node, in, c, [&](int64_t ia, int64_t ib, int64_t ic, const GemmShape& s) {
      if (s.k == 0) {  // an empty sum; BLAS rejects a leading dimension of 0
        for (int64_t i = 0; i < s.m * s.n; ++i) store(cp + ic + i, 0.0f);
      } else if constexpr (std::is_same_v<T, float>) {
        sgemm(s, a + ia, b + ib, s.transpose_b ? s.k : s.n, cp + ic);
      } else {
        gemm_widened(s, a + ia, b + ib, cp + ic);
      }
    });
    if (in.size() == 3) {  // bias [N] on every row
      const T* bias = in[2].as<const T>();
      const int64_t n = c.shape.back(), rows = c.numel() / n;
      parallel_for(rows, std::max<int64_t>(1, kParallelGrain / n), [&](int64_t r) {
        T* row = cp + r * n;
        for (int64_t j = 0; j < n; ++j)
          store(row + j, float(load(row + j)) + float(load(bias + j)));
      });
    }
  });
}

// Integer products wrap modulo 2^32 like the hardware does; unsigned arithmetic keeps
// that defined.
void run_i32_matmul(KernelContext&, const ir::Node& node, std::span<const TensorView> in,
                    std::span<TensorView> out) {
  TensorView& c = out[0];
  if (c.numel() == 0) return;
  const uint32_t* a = in[0].as<const uint32_t>();
  const uint32_t* b = in[1].as<const uint32_t>();
  uint32_t* cp = c.as<uint32_t>();
  for_each_batch(node, in, c, [&](int64_t ia, int64_t ib, int64_t ic, const GemmShape& s) {
    const int64_t a_row = s.transpose_a ? 1 : s.k, a_col = s.transpose_a ? s.m : 1;
    const int64_t b_row = s.transpose_b ? 1 : s.n, b_col = s.transpose_b ? s.k : 1;
    parallel_for(s.m, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(s.n * s.k, 1)),
                 [&](int64_t i) {
                   uint32_t* row = cp + ic + i * s.n;
                   std::fill(row, row + s.n, 0u);
                   for (int64_t kk = 0; kk < s.k; ++kk) {
                     uint32_t av = a[ia + i * a_row + kk * a_col];
                     const uint32_t* bp = b + ib + kk * b_row;
                     for (int64_t j = 0; j < s.n; ++j) row[j] += av * bp[j * b_col];
                   }
                 });
  });
}

}  // namespace

void register_matmul_kernels(Backend& b) {
  b.add_kernel("matmul", Kernel{"cpu.matmul.openblas", run_float_matmul,
                                [](const ir::Node&, std::span<const TensorView> in) {
                                  return is_float(in[0].dtype) && matmul_reads_views(in);
                                },
                                nullptr, true});
  b.add_kernel("matmul", Kernel{"cpu.matmul.i32", run_i32_matmul,
                                [](const ir::Node&, std::span<const TensorView> in) {
                                  return in[0].dtype == DType::i32 && matmul_reads_views(in);
                                },
                                nullptr, true});
}

}  // namespace loom::cpu
