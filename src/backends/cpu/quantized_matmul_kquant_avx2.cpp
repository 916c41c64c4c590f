// AVX2 kernels of the GGUF-block matmul for the K-quants Q4_K, Q5_K and Q6_K (below). Q4_K weights
// (super-blocks of 256: f16 d and dmin, eight 6-bit scales and mins, 128 bytes of codes) with int8
// activations per block of 32, as for the other formats. Sub-block s of a super-block contributes
//   d * scale_s * d_x * sum(code * q_x)  -  dmin * min_s * s_x
// where s_x = d_x * sum(q_x) comes with the activation block. Per super-block the eight
// integer sums are reduced into one register [I0 .. I7] (pair sums are <= 3810, so two rounds
// of int16 hadd cannot overflow), converted once and multiplied by the eight scales at once.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "backends/cpu/quantized_matmul_blocks.h"

#define LOOM_AVX2 __attribute__((target("avx2,fma,f16c")))

namespace loom::quant::detail {

namespace {

LOOM_AVX2 inline float f16(const uint8_t* p) {
  uint16_t bits;
  std::memcpy(&bits, p, 2);
  return _cvtsh_ss(bits);
}

LOOM_AVX2 inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// The eight bytes of v (low first) as eight floats.
LOOM_AVX2 inline __m256 as_floats(uint64_t v) {
  return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128(int64_t(v))));
}

// One weight row x MT activation rows. xd / xs: the activation blocks' d and s, contiguous
// per activation row (x_stride apart), so eight of them load as one vector.
// Q5_K (five_bits) is Q4_K plus 32 bytes of fifth bits before the codes: element l of chunk c
// takes bit 2c (first 32) or 2c + 1 (next 32) of byte l. Its pair sums are <= 2 * 31 * 127, so
// four of them (31496) still fit the int16 hadds.
template <int MT, bool five_bits>
LOOM_AVX2 void q4k_row(const uint8_t* w, int64_t superblocks, const ActivationBlock* x,
                       const float* xd, const float* xs, int64_t x_stride, float* y, int64_t ldy) {
  __m256 acc[MT], acc_min[MT];
  for (int i = 0; i < MT; ++i) acc[i] = acc_min[i] = _mm256_setzero_ps();
  const __m256i nibble = _mm256_set1_epi8(0x0F);
  const __m256i ones = _mm256_set1_epi16(1);
  constexpr int super_bytes = five_bits ? 176 : 144, codes_at = five_bits ? 48 : 16;
  for (int64_t sb = 0; sb < superblocks; ++sb, w += super_bytes) {
    // The eight 6-bit scales and mins, unpacked four bytes at a time in integer registers
    // (as q4k_scale_min does byte by byte): bytes 0-3 hold scales 0-3 and, in their top two
    // bits, the high bits of scales 4-7; bytes 4-7 the same for the mins; bytes 8-11 the low
    // nibbles of scales 4-7 (low) and mins 4-7 (high).
    uint32_t u0, u1, u2;
    std::memcpy(&u0, w + 4, 4);
    std::memcpy(&u1, w + 8, 4);
    std::memcpy(&u2, w + 12, 4);
    const uint32_t scale_lo = u0 & 0x3F3F3F3F, min_lo = u1 & 0x3F3F3F3F;
    const uint32_t scale_hi = (u2 & 0x0F0F0F0F) | ((u0 >> 6) & 0x03030303) << 4;
    const uint32_t min_hi = ((u2 >> 4) & 0x0F0F0F0F) | ((u1 >> 6) & 0x03030303) << 4;
    const __m256 d_scale =
        _mm256_mul_ps(_mm256_set1_ps(f16(w)), as_floats(scale_lo | uint64_t(scale_hi) << 32));
    const __m256 dmin_min =
        _mm256_mul_ps(_mm256_set1_ps(f16(w + 2)), as_floats(min_lo | uint64_t(min_hi) << 32));
    __m256i codes[8];
    for (int c = 0; c < 4; ++c) {
      const __m256i raw =
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + codes_at + 32 * c));
      codes[2 * c] = _mm256_and_si256(raw, nibble);
      codes[2 * c + 1] = _mm256_and_si256(_mm256_srli_epi16(raw, 4), nibble);
      if constexpr (five_bits) {
        const __m256i high = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + 16));
        const __m256i bit0 = _mm256_set1_epi8(char(1 << (2 * c)));
        const __m256i bit1 = _mm256_set1_epi8(char(2 << (2 * c)));
        const __m256i sixteen = _mm256_set1_epi8(16);
        codes[2 * c] = _mm256_or_si256(
            codes[2 * c],
            _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(high, bit0), bit0), sixteen));
        codes[2 * c + 1] = _mm256_or_si256(
            codes[2 * c + 1],
            _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(high, bit1), bit1), sixteen));
      }
    }
    for (int i = 0; i < MT; ++i) {
      const ActivationBlock* a = x + i * x_stride + sb * 8;
      __m256i p[8];
      for (int s = 0; s < 8; ++s)
        p[s] = _mm256_maddubs_epi16(codes[s],
                                    _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[s].q)));
      const __m256i h0123 =
          _mm256_hadd_epi16(_mm256_hadd_epi16(p[0], p[1]), _mm256_hadd_epi16(p[2], p[3]));
      const __m256i h4567 =
          _mm256_hadd_epi16(_mm256_hadd_epi16(p[4], p[5]), _mm256_hadd_epi16(p[6], p[7]));
      // [I0 I1 I2 I3 | I0 I1 I2 I3] halves (and 4..7): add the 128-bit halves.
      const __m256i s0123 = _mm256_madd_epi16(h0123, ones);
      const __m256i s4567 = _mm256_madd_epi16(h4567, ones);
      const __m256i sums = _mm256_add_epi32(_mm256_permute2x128_si256(s0123, s4567, 0x20),
                                            _mm256_permute2x128_si256(s0123, s4567, 0x31));
      const int64_t at = i * x_stride + sb * 8;
      acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sums),
                               _mm256_mul_ps(d_scale, _mm256_loadu_ps(xd + at)), acc[i]);
      acc_min[i] = _mm256_fmadd_ps(dmin_min, _mm256_loadu_ps(xs + at), acc_min[i]);
    }
  }
  for (int i = 0; i < MT; ++i) y[i * ldy] = hsum(acc[i]) - hsum(acc_min[i]);
}

// Q6_K: super-blocks of 256 = two halves of 128; a half reads 64 bytes of low nibbles, 32 of
// high 2-bit pairs and 8 signed scales (one per 16 elements), d (f16) is last. Block k of a
// half (32 elements) takes the low (k < 2) or high nibbles of low bytes 32 (k % 2) .. + 31 and
// bits 2k, 2k + 1 of the high bytes, and scales 2k (first 16 elements) and 2k + 1. Codes are
// stored + 32: sum((c - 32) x) = maddubs(c, x) - maddubs(32, x) (|pair| <= 8128), and
// madd's eight int32 lanes are [first 16 elements x 4 | last 16 x 4], so one permute of the
// half's eight scales gives the block's [s_2k x 4, s_2k+1 x 4].
template <int MT>
LOOM_AVX2 void q6k_row(const uint8_t* w, int64_t superblocks, const ActivationBlock* x,
                       int64_t x_stride, float* y, int64_t ldy) {
  __m256 acc[MT];
  for (int i = 0; i < MT; ++i) acc[i] = _mm256_setzero_ps();
  const __m256i nibble = _mm256_set1_epi8(0x0F), pair = _mm256_set1_epi8(0x30);
  const __m256i ones = _mm256_set1_epi16(1), bias_code = _mm256_set1_epi8(32);
  for (int64_t sb = 0; sb < superblocks; ++sb, w += 210) {
    const __m256 d = _mm256_set1_ps(f16(w + 208));
    for (int half = 0; half < 2; ++half) {
      const uint8_t* low = w + 64 * half;
      const __m256i hi = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + 128 + 32 * half));
      const __m256i low_a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(low));
      const __m256i low_b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(low + 32));
      __m256i codes[4];
      codes[0] = _mm256_or_si256(_mm256_and_si256(low_a, nibble),
                                 _mm256_and_si256(_mm256_slli_epi16(hi, 4), pair));
      codes[1] = _mm256_or_si256(_mm256_and_si256(low_b, nibble),
                                 _mm256_and_si256(_mm256_slli_epi16(hi, 2), pair));
      codes[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(low_a, 4), nibble),
                                 _mm256_and_si256(hi, pair));
      codes[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(low_b, 4), nibble),
                                 _mm256_and_si256(_mm256_srli_epi16(hi, 2), pair));
      const __m256 scales = _mm256_mul_ps(
          d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(
                 _mm_loadl_epi64(reinterpret_cast<const __m128i*>(w + 192 + 8 * half)))));
      for (int k = 0; k < 4; ++k) {
        const __m256 block_scales = _mm256_permutevar8x32_ps(
            scales, _mm256_setr_epi32(2 * k, 2 * k, 2 * k, 2 * k, 2 * k + 1, 2 * k + 1, 2 * k + 1,
                                      2 * k + 1));
        for (int i = 0; i < MT; ++i) {
          const ActivationBlock& a = x[i * x_stride + sb * 8 + half * 4 + k];
          const __m256i xq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.q));
          const __m256i pairs = _mm256_sub_epi16(_mm256_maddubs_epi16(codes[k], xq),
                                                 _mm256_maddubs_epi16(bias_code, xq));
          acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, ones)),
                                   _mm256_mul_ps(block_scales, _mm256_set1_ps(a.d)), acc[i]);
        }
      }
    }
  }
  for (int i = 0; i < MT; ++i) y[i * ldy] = hsum(acc[i]);
}

template <bool five_bits>
LOOM_AVX2 void q4k_gemm(const uint8_t* w, int64_t row_bytes, int64_t blocks,
                        const ActivationBlock* x, int64_t m, int64_t row_begin, int64_t row_end,
                        float* y, int64_t ldy) {
  // The activation scales as plain arrays (the same for every weight row; each thread makes
  // its own copy, m * blocks floats).
  thread_local std::vector<float> xd, xs;
  xd.resize(size_t(m * blocks));
  xs.resize(size_t(m * blocks));
  for (int64_t i = 0; i < m * blocks; ++i) xd[size_t(i)] = x[i].d, xs[size_t(i)] = x[i].s;
  const int64_t superblocks = blocks / 8;
  for (int64_t j = row_begin; j < row_end; ++j) {
    const uint8_t* wr = w + j * row_bytes;
    for (int64_t i = 0; i < m; i += 4) {
      const ActivationBlock* xi = x + i * blocks;
      const float *xdi = xd.data() + i * blocks, *xsi = xs.data() + i * blocks;
      float* yi = y + i * ldy + j;
      switch (std::min<int64_t>(4, m - i)) {
        case 1:
          q4k_row<1, five_bits>(wr, superblocks, xi, xdi, xsi, blocks, yi, ldy);
          break;
        case 2:
          q4k_row<2, five_bits>(wr, superblocks, xi, xdi, xsi, blocks, yi, ldy);
          break;
        case 3:
          q4k_row<3, five_bits>(wr, superblocks, xi, xdi, xsi, blocks, yi, ldy);
          break;
        default:
          q4k_row<4, five_bits>(wr, superblocks, xi, xdi, xsi, blocks, yi, ldy);
          break;
      }
    }
  }
}

}  // namespace

LOOM_AVX2 void quantized_gemm_q4_k_avx2(const uint8_t* w, int64_t row_bytes, int64_t blocks,
                                        const ActivationBlock* x, int64_t m, int64_t row_begin,
                                        int64_t row_end, float* y, int64_t ldy) {
  q4k_gemm<false>(w, row_bytes, blocks, x, m, row_begin, row_end, y, ldy);
}

LOOM_AVX2 void quantized_gemm_q5_k_avx2(const uint8_t* w, int64_t row_bytes, int64_t blocks,
                                        const ActivationBlock* x, int64_t m, int64_t row_begin,
                                        int64_t row_end, float* y, int64_t ldy) {
  q4k_gemm<true>(w, row_bytes, blocks, x, m, row_begin, row_end, y, ldy);
}

}  // namespace loom::quant::detail

namespace loom::quant::detail {

LOOM_AVX2 void quantized_gemm_q6_k_avx2(const uint8_t* w, int64_t row_bytes, int64_t blocks,
                                        const ActivationBlock* x, int64_t m, int64_t row_begin,
                                        int64_t row_end, float* y, int64_t ldy) {
  const int64_t superblocks = blocks / 8;
  for (int64_t j = row_begin; j < row_end; ++j) {
    const uint8_t* wr = w + j * row_bytes;
    for (int64_t i = 0; i < m; i += 4) {
      const ActivationBlock* xi = x + i * blocks;
      float* yi = y + i * ldy + j;
      switch (std::min<int64_t>(4, m - i)) {
        case 1:
          q6k_row<1>(wr, superblocks, xi, blocks, yi, ldy);
          break;
        case 2:
          q6k_row<2>(wr, superblocks, xi, blocks, yi, ldy);
          break;
        case 3:
          q6k_row<3>(wr, superblocks, xi, blocks, yi, ldy);
          break;
        default:
          q6k_row<4>(wr, superblocks, xi, blocks, yi, ldy);
          break;
      }
    }
  }
}

}  // namespace loom::quant::detail
