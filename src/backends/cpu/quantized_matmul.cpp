// y = x · W^T with W in GGUF blocks: the entry point, its threading and the portable path.
// For the quantized formats each row of x is first quantized to int8 per block of 32 (d =
// max|x| / 127, as llama.cpp's Q8_0), so a block's dot product is an integer sum times
// scales. The AVX2 kernels (quantized_matmul_avx2.cpp, quantized_matmul_kquant_avx2.cpp) carry
// target attributes (the library is built for x86-64-v2) and are chosen at run time; the
// portable code here computes the same integer sums. F16/BF16 weights, and any format with
// quantize_activations off, expand one weight row at a time to floats.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "backends/cpu/quantized_matmul_blocks.h"
#include "io/ggml_dequantize.h"
#include "io/ggml_types.h"
#include "loom/error.h"
#include "loom/half.h"
#include "loom/quant.h"

namespace loom::quant {

namespace {

using io::GgmlType;

using detail::ActivationBlock;

float f16_at(const uint8_t* p) {
  uint16_t bits;
  std::memcpy(&bits, p, 2);
  return f16_to_float(bits);
}

// ---- portable block dots -------------------------------------------------------------------

float dot_q4_0(const uint8_t* w, const ActivationBlock* a, int64_t blocks) {
  float acc = 0;
  for (int64_t b = 0; b < blocks; ++b, w += 18) {
    int sum = 0;
    for (int j = 0; j < 16; ++j)
      sum += ((w[2 + j] & 0x0F) - 8) * a[b].q[j] + ((w[2 + j] >> 4) - 8) * a[b].q[j + 16];
    acc += f16_at(w) * a[b].d * float(sum);
  }
  return acc;
}

float dot_q4_1(const uint8_t* w, const ActivationBlock* a, int64_t blocks) {
  float acc = 0;
  for (int64_t b = 0; b < blocks; ++b, w += 20) {
    int sum = 0;
    for (int j = 0; j < 16; ++j)
      sum += (w[4 + j] & 0x0F) * a[b].q[j] + (w[4 + j] >> 4) * a[b].q[j + 16];
    acc += f16_at(w) * a[b].d * float(sum) + f16_at(w + 2) * a[b].s;
  }
  return acc;
}

float dot_q8_0(const uint8_t* w, const ActivationBlock* a, int64_t blocks) {
  float acc = 0;
  for (int64_t b = 0; b < blocks; ++b, w += 34) {
    const auto* q = reinterpret_cast<const int8_t*>(w + 2);
    int sum = 0;
    for (int j = 0; j < 32; ++j) sum += q[j] * a[b].q[j];
    acc += f16_at(w) * a[b].d * float(sum);
  }
  return acc;
}

// Q5_0 / Q5_1: bit j of the 32-bit word after the scales is element j's fifth bit.
template <bool has_min>
float dot_q5(const uint8_t* w, const ActivationBlock* a, int64_t blocks) {
  constexpr int bytes = has_min ? 24 : 22, scales = has_min ? 4 : 2, offset = has_min ? 0 : 16;
  float acc = 0;
  for (int64_t b = 0; b < blocks; ++b, w += bytes) {
    uint32_t high;
    std::memcpy(&high, w + scales, 4);
    const uint8_t* q = w + scales + 4;
    int sum = 0;
    for (int j = 0; j < 16; ++j) {
      const int lo = (q[j] & 0x0F) | int((high >> j) & 1u) << 4;
      const int hi = (q[j] >> 4) | int((high >> (j + 16)) & 1u) << 4;
      sum += (lo - offset) * a[b].q[j] + (hi - offset) * a[b].q[j + 16];
    }
    acc += f16_at(w) * a[b].d * float(sum);
    if (has_min) acc += f16_at(w + 2) * a[b].s;
  }
  return acc;
}

float dot_iq4_nl(const uint8_t* w, const ActivationBlock* a, int64_t blocks) {
  float acc = 0;
  for (int64_t b = 0; b < blocks; ++b, w += 18) {
    int sum = 0;
    for (int j = 0; j < 16; ++j)
      sum += detail::kIq4nlLevels[w[2 + j] & 0x0F] * a[b].q[j] +
             detail::kIq4nlLevels[w[2 + j] >> 4] * a[b].q[j + 16];
    acc += f16_at(w) * a[b].d * float(sum);
  }
  return acc;
}

// Q4_K: super-blocks of 256 (eight blocks of 32 with 6-bit scales and mins); `blocks` counts
// blocks of 32. Q5_K (five_bits) adds 32 bytes of fifth bits before the codes: element l of
// chunk c takes bit 2c (first 32) or 2c + 1 (next 32) of byte l.
template <bool five_bits>
float dot_q4_k(const uint8_t* w, const ActivationBlock* a, int64_t blocks) {
  constexpr int super_bytes = five_bits ? 176 : 144, codes_at = five_bits ? 48 : 16;
  float acc = 0;
  for (int64_t sb = 0; sb < blocks / 8; ++sb, w += super_bytes, a += 8) {
    const float d = f16_at(w), dmin = f16_at(w + 2);
    const uint8_t* q = w + codes_at;
    const uint8_t* high = w + 16;
    for (int c = 0; c < 4; ++c, q += 32) {
      int s0, m0, s1, m1;
      detail::q4k_scale_min(2 * c, w + 4, s0, m0);
      detail::q4k_scale_min(2 * c + 1, w + 4, s1, m1);
      int sum0 = 0, sum1 = 0;
      for (int l = 0; l < 32; ++l) {
        int lo = q[l] & 0x0F, hi = q[l] >> 4;
        if (five_bits) {
          lo |= ((high[l] >> (2 * c)) & 1) << 4;
          hi |= ((high[l] >> (2 * c + 1)) & 1) << 4;
        }
        sum0 += lo * a[2 * c].q[l];
        sum1 += hi * a[2 * c + 1].q[l];
      }
      acc += d * float(s0) * a[2 * c].d * float(sum0) - dmin * float(m0) * a[2 * c].s;
      acc += d * float(s1) * a[2 * c + 1].d * float(sum1) - dmin * float(m1) * a[2 * c + 1].s;
    }
  }
  return acc;
}

// Q6_K: two halves of 128 per super-block; block k of a half has codes (+ 32) from low
// nibbles (k < 2) or high nibbles of low bytes 32 (k % 2) .. + 31 and bits 2k, 2k + 1 of the
// high bytes, and scales 2k (first 16 elements) and 2k + 1 (last 16).
float dot_q6_k(const uint8_t* w, const ActivationBlock* a, int64_t blocks) {
  float acc = 0;
  for (int64_t sb = 0; sb < blocks / 8; ++sb, w += 210) {
    const float d = f16_at(w + 208);
    for (int half = 0; half < 2; ++half, a += 4) {
      const uint8_t* low = w + 64 * half;
      const uint8_t* high = w + 128 + 32 * half;
      const auto* scales = reinterpret_cast<const int8_t*>(w + 192 + 8 * half);
      for (int k = 0; k < 4; ++k) {
        int sum[2] = {0, 0};
        for (int l = 0; l < 32; ++l) {
          const uint8_t byte = low[l + 32 * (k % 2)];
          const int nib = k < 2 ? byte & 0x0F : byte >> 4;
          const int code = nib | ((high[l] >> (2 * k)) & 3) << 4;
          sum[l / 16] += (code - 32) * a[k].q[l];
        }
        acc += d * a[k].d * float(scales[2 * k] * sum[0] + scales[2 * k + 1] * sum[1]);
      }
    }
  }
  return acc;
}

using BlockDot = float (*)(const uint8_t*, const ActivationBlock*, int64_t);

BlockDot portable_block_dot(GgmlType type) {
  switch (type) {
    case GgmlType::Q4_0:
      return dot_q4_0;
    case GgmlType::Q4_1:
      return dot_q4_1;
    case GgmlType::Q8_0:
      return dot_q8_0;
    case GgmlType::Q5_0:
      return dot_q5<false>;
    case GgmlType::Q5_1:
      return dot_q5<true>;
    case GgmlType::IQ4_NL:
      return dot_iq4_nl;
    case GgmlType::Q4_K:
      return dot_q4_k<false>;
    case GgmlType::Q5_K:
      return dot_q4_k<true>;
    case GgmlType::Q6_K:
      return dot_q6_k;
    default:
      return nullptr;
  }
}

// count values of x (f32, f16 or bf16) as f32 into out.
void widen(const void* x, DType dtype, int64_t count, float* out) {
  const auto* p = static_cast<const uint16_t*>(x);
  if (dtype == DType::f32) {
    if (count > 0) std::memcpy(out, x, size_t(count) * 4);  // x may be null when count is 0
  } else if (dtype == DType::f16) {
    for (int64_t i = 0; i < count; ++i) out[i] = f16_to_float(p[i]);
  } else if (dtype == DType::bf16) {
    for (int64_t i = 0; i < count; ++i) out[i] = bf16_to_float(p[i]);
  } else {
    fail(ErrorKind::dtype,
         std::string("quantized matmul: x must be f32, f16 or bf16, not ") + dtype_name(dtype));
  }
}

std::vector<float> activations_as_f32(const void* x, DType dtype, int64_t count) {
  std::vector<float> out(static_cast<size_t>(count));
  widen(x, dtype, count, out.data());
  return out;
}

void check_activation_dtype(DType dtype) {
  if (dtype != DType::f32 && dtype != DType::f16 && dtype != DType::bf16)
    fail(ErrorKind::dtype,
         std::string("quantized matmul: x must be f32, f16 or bf16, not ") + dtype_name(dtype));
}

// Below this many weight bytes one thread does the whole product: waking the other costs
// more than it saves (a few microseconds against ~3 us for 64 KB at 20 GB/s).
constexpr int64_t kMinParallelWeightBytes = 96 << 10;

// The int8-activation product (Q4_0, Q4_1, Q8_0). One parallel region: the threads first
// quantize the activation rows (each x row once), then each takes a contiguous range of
// weight rows, a multiple of 4, so a row's blocks are read by one thread only.
void int8_gemm(GgmlType type, const uint8_t* w, int64_t row_bytes, int64_t n, int64_t k,
               const void* x, DType x_dtype, int64_t m, float* y, bool avx2) {
  check_activation_dtype(x_dtype);
  const int64_t blocks = k / 32;
  thread_local std::vector<ActivationBlock> xq;  // reused: decode calls this hundreds of times
  if (xq.size() < size_t(m * blocks)) xq.resize(size_t(m * blocks));
  ActivationBlock* xqd = xq.data();
  const BlockDot dot = portable_block_dot(type);
  const bool parallel = n * row_bytes * (m < 8 ? 1 : 4) >= kMinParallelWeightBytes;
#pragma omp parallel if (parallel)
  {
    std::vector<float> row;  // x's row as f32 when x is f16 or bf16
#pragma omp for schedule(static)
    for (int64_t i = 0; i < m; ++i) {
      const float* xr;
      if (x_dtype == DType::f32) {
        xr = static_cast<const float*>(x) + i * k;
      } else {
        row.resize(size_t(k));
        widen(static_cast<const uint16_t*>(x) + i * k, x_dtype, k, row.data());
        xr = row.data();
      }
      if (avx2)
        detail::quantize_activations_avx2(xr, k, xqd + i * blocks);
      else
        detail::quantize_activations(xr, k, xqd + i * blocks);
    }
    const int threads = omp_get_num_threads(), t = omp_get_thread_num();
    const int64_t tiles = (n + 3) / 4;
    const int64_t begin = std::min(n, tiles * t / threads * 4);
    const int64_t end = std::min(n, tiles * (t + 1) / threads * 4);
    if (avx2) {
      detail::quantized_gemm_avx2(type, w, row_bytes, blocks, xqd, m, begin, end, y, n);
    } else {
      for (int64_t j = begin; j < end; ++j)
        for (int64_t i = 0; i < m; ++i)
          y[i * n + j] = dot(w + j * row_bytes, xqd + i * blocks, blocks);
    }
  }
}

}  // namespace

bool cpu_has_avx2() {
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                          __builtin_cpu_supports("f16c");
  return has;
}

void ggml_matmul(uint32_t ggml_type, const void* weight_blocks, int64_t weight_bytes, int64_t n,
                 int64_t k, const void* x, DType x_dtype, int64_t m, float* y,
                 const GemmOptions& options) {
  const io::GgmlTypeTraits* traits = io::find_ggml_type(ggml_type);
  if (!traits)
    fail(ErrorKind::unsupported,
         "quantized matmul: unknown weight type " + io::ggml_type_name(ggml_type));
  if (n < 0 || k < 0 || m < 0) fail(ErrorKind::shape, "quantized matmul: negative extent");
  if (k % traits->block_size != 0)
    fail(ErrorKind::shape, std::string("quantized matmul: K = ") + std::to_string(k) +
                               " is not a whole number of " + traits->name + " blocks");
  const int64_t row_bytes = k / traits->block_size * traits->bytes_per_block;
  if (weight_bytes < n * row_bytes)
    fail(ErrorKind::shape, std::string("quantized matmul: ") + std::to_string(weight_bytes) +
                               " bytes hold fewer than " + std::to_string(n) + " rows of " +
                               std::to_string(k) + " " + traits->name + " elements");
  const auto* w = static_cast<const uint8_t*>(weight_blocks);
  const auto type = GgmlType(ggml_type);
  check_activation_dtype(x_dtype);
  if (m == 0 || n == 0) return;
  if (k == 0) {  // empty sums (the tiled kernels walk K and would write nothing)
    std::fill(y, y + m * n, 0.f);
    return;
  }
  if (options.quantize_activations && portable_block_dot(type)) {
    int8_gemm(type, w, row_bytes, n, k, x, x_dtype, m, y, options.allow_avx2 && cpu_has_avx2());
    return;
  }
  const std::vector<float> xf = activations_as_f32(x, x_dtype, m * k);
  // Any other format: expand one weight row at a time (it stays in cache across x's rows).
#pragma omp parallel
  {
    std::vector<float> row(static_cast<size_t>(k));
#pragma omp for schedule(static)
    for (int64_t j = 0; j < n; ++j) {
      io::dequantize_ggml(type,
                          std::span<const std::byte>(
                              reinterpret_cast<const std::byte*>(w + j * row_bytes), row_bytes),
                          k, row.data());
      for (int64_t i = 0; i < m; ++i) {
        const float* xr = xf.data() + i * k;
        float acc = 0;
#pragma omp simd reduction(+ : acc)
        for (int64_t c = 0; c < k; ++c) acc += xr[c] * row[c];
        y[i * n + j] = acc;
      }
    }
  }
}

namespace detail {

void quantize_activations(const float* x, int64_t k, ActivationBlock* out) {
  for (int64_t b = 0; b < k / 32; ++b, x += 32) {
    float amax = 0;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127.f;
    const float inv = d > 0 ? 1.f / d : 0.f;
    int sum = 0;
    for (int j = 0; j < 32; ++j) {
      const int q = int(std::nearbyint(x[j] * inv));
      out[b].q[j] = int8_t(std::clamp(q, -127, 127));
      sum += out[b].q[j];
    }
    out[b].d = d;
    out[b].s = d * float(sum);
  }
}

}  // namespace detail

}  // namespace loom::quant
