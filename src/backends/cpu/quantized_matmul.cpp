// y = x · W^T with W in GGUF blocks. For Q4_0, Q4_1 and Q8_0 each row of x is first quantized
// to int8 per block of 32 (d = max|x| / 127, as llama.cpp's Q8_0), so a block's dot product is
// an integer sum times two scales. The AVX2 code carries target attributes (the library is
// built for x86-64-v2) and is chosen at run time; the portable code computes the same sums.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "io/ggml_dequantize.h"
#include "io/ggml_types.h"
#include "loom/error.h"
#include "loom/half.h"
#include "loom/quant.h"

namespace loom::quant {

namespace {

using io::GgmlType;

// One block of 32 quantized activations: value = d * q; s = d * sum(q) serves Q4_1's min.
struct ActivationBlock {
  float d;
  float s;
  int8_t q[32];
};

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

// ---- AVX2 block dots -----------------------------------------------------------------------

#define LOOM_AVX2 __attribute__((target("avx2,fma,f16c")))

LOOM_AVX2 inline float f16_avx(const uint8_t* p) {
  uint16_t bits;
  std::memcpy(&bits, p, 2);
  return _cvtsh_ss(bits);
}

// 16 bytes of nibbles -> 32 bytes: element j (low nibble of byte j) then j + 16 (high).
LOOM_AVX2 inline __m256i unpack_nibbles(const uint8_t* p) {
  const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  const __m128i mask = _mm_set1_epi8(0x0F);
  const __m128i lo = _mm_and_si128(bytes, mask);
  const __m128i hi = _mm_and_si128(_mm_srli_epi16(bytes, 4), mask);
  return _mm256_set_m128i(hi, lo);
}

// Sum of products of signed bytes a and b, as 8 int32 lanes converted to float. maddubs wants
// an unsigned operand: |a| with a's sign moved onto b (|a| <= 128, |b| <= 127: no saturation).
LOOM_AVX2 inline __m256 dot_i8(__m256i a, __m256i b) {
  const __m256i abs_a = _mm256_sign_epi8(a, a);
  const __m256i signed_b = _mm256_sign_epi8(b, a);
  const __m256i pairs = _mm256_maddubs_epi16(abs_a, signed_b);
  return _mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, _mm256_set1_epi16(1)));
}

LOOM_AVX2 inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

LOOM_AVX2 float dot_q4_0_avx2(const uint8_t* w, const ActivationBlock* a, int64_t blocks) {
  __m256 acc = _mm256_setzero_ps();
  const __m256i eight = _mm256_set1_epi8(8);
  for (int64_t b = 0; b < blocks; ++b, w += 18) {
    const __m256i codes = _mm256_sub_epi8(unpack_nibbles(w + 2), eight);
    const __m256i xq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[b].q));
    const __m256 scale = _mm256_set1_ps(f16_avx(w) * a[b].d);
    acc = _mm256_fmadd_ps(scale, dot_i8(codes, xq), acc);
  }
  return hsum(acc);
}

LOOM_AVX2 float dot_q4_1_avx2(const uint8_t* w, const ActivationBlock* a, int64_t blocks) {
  __m256 acc = _mm256_setzero_ps();
  float min_part = 0;
  for (int64_t b = 0; b < blocks; ++b, w += 20) {
    const __m256i codes = unpack_nibbles(w + 4);  // 0..15: already a valid unsigned operand
    const __m256i xq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[b].q));
    const __m256i pairs = _mm256_maddubs_epi16(codes, xq);
    const __m256 sums = _mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, _mm256_set1_epi16(1)));
    acc = _mm256_fmadd_ps(_mm256_set1_ps(f16_avx(w) * a[b].d), sums, acc);
    min_part += f16_avx(w + 2) * a[b].s;
  }
  return hsum(acc) + min_part;
}

LOOM_AVX2 float dot_q8_0_avx2(const uint8_t* w, const ActivationBlock* a, int64_t blocks) {
  __m256 acc = _mm256_setzero_ps();
  for (int64_t b = 0; b < blocks; ++b, w += 34) {
    const __m256i codes = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + 2));
    const __m256i xq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[b].q));
    acc = _mm256_fmadd_ps(_mm256_set1_ps(f16_avx(w) * a[b].d), dot_i8(codes, xq), acc);
  }
  return hsum(acc);
}

using BlockDot = float (*)(const uint8_t*, const ActivationBlock*, int64_t);

BlockDot block_dot(GgmlType type, bool avx2) {
  switch (type) {
    case GgmlType::Q4_0:
      return avx2 ? dot_q4_0_avx2 : dot_q4_0;
    case GgmlType::Q4_1:
      return avx2 ? dot_q4_1_avx2 : dot_q4_1;
    case GgmlType::Q8_0:
      return avx2 ? dot_q8_0_avx2 : dot_q8_0;
    default:
      return nullptr;
  }
}

std::vector<float> activations_as_f32(const void* x, DType dtype, int64_t count) {
  std::vector<float> out(static_cast<size_t>(count));
  const auto* p = static_cast<const uint16_t*>(x);
  if (dtype == DType::f32) {
    if (count > 0) std::memcpy(out.data(), x, size_t(count) * 4);  // data() may be null
  } else if (dtype == DType::f16) {
    for (int64_t i = 0; i < count; ++i) out[i] = f16_to_float(p[i]);
  } else if (dtype == DType::bf16) {
    for (int64_t i = 0; i < count; ++i) out[i] = bf16_to_float(p[i]);
  } else {
    fail(ErrorKind::dtype,
         std::string("quantized matmul: x must be f32, f16 or bf16, not ") + dtype_name(dtype));
  }
  return out;
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
  const std::vector<float> xf = activations_as_f32(x, x_dtype, m * k);
  const auto* w = static_cast<const uint8_t*>(weight_blocks);
  const auto type = GgmlType(ggml_type);
  const BlockDot dot = options.quantize_activations
                           ? block_dot(type, options.allow_avx2 && cpu_has_avx2())
                           : nullptr;
  if (dot) {
    const int64_t blocks = k / 32;
    std::vector<ActivationBlock> xq(static_cast<size_t>(m * blocks));
    for (int64_t i = 0; i < m; ++i) quantize_activations(xf.data() + i * k, k, &xq[i * blocks]);
#pragma omp parallel for schedule(static)
    for (int64_t j = 0; j < n; ++j)
      for (int64_t i = 0; i < m; ++i)
        y[i * n + j] = dot(w + j * row_bytes, &xq[i * blocks], blocks);
    return;
  }
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

}  // namespace loom::quant
