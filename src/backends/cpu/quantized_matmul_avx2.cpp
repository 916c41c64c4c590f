// AVX2 kernels of the GGUF-block matmul for the formats with blocks of 32 (Q4_0, Q4_1, Q5_0,
// Q5_1, Q8_0, IQ4_NL; int8 activations) and the dispatch to the K-quant kernels. The library
// is built for x86-64-v2, so every function here carries the AVX2 target and is only called
// after quant::cpu_has_avx2().
//
// A tile is R weight rows x MT activation rows. Per block of 32 it reads each weight row's
// block once (unpacked once, used MT times) and each activation block once (used R times).
// Accumulators are 8 float lanes and are summed across lanes once, at the end of the row,
// not per block. The R f16 scales of a block are loaded together and converted with one F16C
// instruction: each row's first 4 bytes go into one 32-bit lane, so the converted vector is
// [d0, h0, d1, h1, ...] where h is Q4_1's min (or code bytes, unused). Multiplied by an
// activation block's [d, s] it gives every scale of the tile: d_w * d_x in even lanes and,
// for Q4_1 and Q5_1, m_w * s_x in odd lanes. The 4- and 5-bit formats use tile4_packed
// (below), which also shares the int-to-float conversion and the FMA between four rows.
//
// Weight rows are prefetched a tile ahead: with K = 576 a row is 360-612 bytes, too short a
// stream for the hardware prefetcher, and without it the 49152 x 576 Q8_0 head ran at 6.6
// GB/s instead of 15 on one core.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "backends/cpu/quantized_matmul_blocks.h"

#define LOOM_AVX2 __attribute__((target("avx2,fma,f16c")))

namespace loom::quant::detail {

namespace {

using io::GgmlType;

LOOM_AVX2 inline int32_t load_u32(const uint8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// 16 bytes of nibbles -> 32 bytes 0..15: element j (low nibble of byte j), then j + 16 (high).
// Both halves of the register get the same 16 bytes; the upper half is shifted by 4.
LOOM_AVX2 inline __m256i unpack_nibbles(const uint8_t* p) {
  const __m256i both =
      _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  const __m256i shifted = _mm256_srlv_epi64(both, _mm256_set_epi64x(4, 4, 0, 0));
  return _mm256_and_si256(shifted, _mm256_set1_epi8(0x0F));
}

// Per format: block size in bytes, where the codes start, how the codes load, and the 8
// int32 lanes of a block's integer dot product with 32 int8 activations.
struct Q4_0 {
  static constexpr int bytes = 18;
  static constexpr bool has_min = false;
  static constexpr bool small_pairs = true;
  LOOM_AVX2 static __m256i codes(const uint8_t* b) { return unpack_nibbles(b + 2); }
  // Codes are stored +8: sum((c - 8) x) = sum(c x) - 8 sum(x); 8 sum(x) per pair is the same
  // for every row, so the caller computes it once per activation block (`bias`).
  LOOM_AVX2 static __m256i bias(__m256i xq) {
    return _mm256_maddubs_epi16(_mm256_set1_epi8(8), xq);
  }
  // 16 int16 sums of two products each, |sum| <= 2 * 8 * 127.
  LOOM_AVX2 static __m256i pairs(__m256i c, __m256i xq, __m256i bias) {
    return _mm256_sub_epi16(_mm256_maddubs_epi16(c, xq), bias);
  }
  LOOM_AVX2 static __m256i dot(__m256i c, __m256i xq, __m256i bias) {
    return _mm256_madd_epi16(pairs(c, xq, bias), _mm256_set1_epi16(1));
  }
};

struct Q4_1 {
  static constexpr int bytes = 20;
  static constexpr bool has_min = true;
  static constexpr bool small_pairs = true;
  LOOM_AVX2 static __m256i codes(const uint8_t* b) { return unpack_nibbles(b + 4); }
  LOOM_AVX2 static __m256i bias(__m256i) { return _mm256_setzero_si256(); }
  // |sum| <= 2 * 15 * 127.
  LOOM_AVX2 static __m256i pairs(__m256i c, __m256i xq, __m256i) {
    return _mm256_maddubs_epi16(c, xq);
  }
  LOOM_AVX2 static __m256i dot(__m256i c, __m256i xq, __m256i) {
    return _mm256_madd_epi16(pairs(c, xq, c), _mm256_set1_epi16(1));
  }
};

struct Q8_0 {
  static constexpr int bytes = 34;
  static constexpr bool has_min = false;
  static constexpr bool small_pairs = false;
  LOOM_AVX2 static __m256i codes(const uint8_t* b) {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 2));
  }
  LOOM_AVX2 static __m256i bias(__m256i) { return _mm256_setzero_si256(); }
  // maddubs wants an unsigned operand: |c| with c's sign moved onto x (|c| <= 128, |x| <= 127,
  // a pair sums to at most 32512: no saturation).
  LOOM_AVX2 static __m256i dot(__m256i c, __m256i xq, __m256i) {
    const __m256i pairs = _mm256_maddubs_epi16(_mm256_sign_epi8(c, c), _mm256_sign_epi8(xq, c));
    return _mm256_madd_epi16(pairs, _mm256_set1_epi16(1));
  }
};

// Q5_0 / Q5_1: 4-bit codes plus a fifth bit per element from a 32-bit word (bit i for
// element i, in the order unpack_nibbles gives), so codes are 0..31.
LOOM_AVX2 inline __m256i unpack_q5(const uint8_t* high_bits, const uint8_t* nibbles) {
  int32_t high;
  std::memcpy(&high, high_bits, 4);
  // Byte i of the result looks at byte i / 8 of the word, bit i % 8.
  const __m256i spread = _mm256_shuffle_epi8(
      _mm256_set1_epi32(high),
      _mm256_setr_epi64x(0, 0x0101010101010101, 0x0202020202020202, 0x0303030303030303));
  const __m256i bit = _mm256_set1_epi64x(int64_t(0x8040201008040201));
  const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit);
  return _mm256_or_si256(unpack_nibbles(nibbles), _mm256_and_si256(set, _mm256_set1_epi8(0x10)));
}

struct Q5_0 {
  static constexpr int bytes = 22;
  static constexpr bool has_min = false;
  // maddubs sums <= 2 * 31 * 127; minus the bias, |sum| <= 2 * 16 * 127 = 4064.
  static constexpr bool small_pairs = true;
  LOOM_AVX2 static __m256i codes(const uint8_t* b) { return unpack_q5(b + 2, b + 6); }
  LOOM_AVX2 static __m256i bias(__m256i xq) {
    return _mm256_maddubs_epi16(_mm256_set1_epi8(16), xq);
  }
  LOOM_AVX2 static __m256i pairs(__m256i c, __m256i xq, __m256i bias) {
    return _mm256_sub_epi16(_mm256_maddubs_epi16(c, xq), bias);
  }
  LOOM_AVX2 static __m256i dot(__m256i c, __m256i xq, __m256i bias) {
    return _mm256_madd_epi16(pairs(c, xq, bias), _mm256_set1_epi16(1));
  }
};

struct Q5_1 {
  static constexpr int bytes = 24;
  static constexpr bool has_min = true;
  // |sum| <= 2 * 31 * 127 = 7874: four of them (31496) still fit in int16.
  static constexpr bool small_pairs = true;
  LOOM_AVX2 static __m256i codes(const uint8_t* b) { return unpack_q5(b + 4, b + 8); }
  LOOM_AVX2 static __m256i bias(__m256i) { return _mm256_setzero_si256(); }
  LOOM_AVX2 static __m256i pairs(__m256i c, __m256i xq, __m256i) {
    return _mm256_maddubs_epi16(c, xq);
  }
  LOOM_AVX2 static __m256i dot(__m256i c, __m256i xq, __m256i) {
    return _mm256_madd_epi16(pairs(c, xq, c), _mm256_set1_epi16(1));
  }
};

// IQ4_NL: each nibble indexes a table of 16 signed levels; then as Q8_0.
struct IQ4_NL {
  static constexpr int bytes = 18;
  static constexpr bool has_min = false;
  static constexpr bool small_pairs = false;
  LOOM_AVX2 static __m256i codes(const uint8_t* b) {
    const __m256i table = _mm256_broadcastsi128_si256(
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(kIq4nlLevels)));
    return _mm256_shuffle_epi8(table, unpack_nibbles(b + 2));
  }
  LOOM_AVX2 static __m256i bias(__m256i) { return _mm256_setzero_si256(); }
  LOOM_AVX2 static __m256i dot(__m256i c, __m256i xq, __m256i) { return Q8_0::dot(c, xq, c); }
};

LOOM_AVX2 inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

LOOM_AVX2 inline float lane(__m256 v, int i) {
  alignas(32) float f[8];
  _mm256_store_ps(f, v);
  return f[i];
}

// R weight rows (w, row_bytes apart) x MT activation rows (x, x_stride blocks apart) over
// `blocks` blocks; y[i * ldy + r].
template <class F, int R, int MT>
LOOM_AVX2 void tile(const uint8_t* w, int64_t row_bytes, int64_t blocks, const ActivationBlock* x,
                    int64_t x_stride, float* y, int64_t ldy, bool add_to_y) {
  __m256 acc[R][MT];
  __m256 mins[MT];
#pragma GCC unroll 4
  for (int i = 0; i < MT; ++i) {
    mins[i] = _mm256_setzero_ps();
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) acc[r][i] = _mm256_setzero_ps();
  }
  for (int64_t b = 0; b < blocks; ++b) {
    const uint8_t* wb = w + b * F::bytes;
    {
      // The next tile's rows follow this tile's in memory: fetch them at the rate this tile
      // consumes its own, a whole tile ahead (short rows are too short a stream for the
      // hardware prefetcher to ramp up on).
      const char* ahead = reinterpret_cast<const char*>(w + R * row_bytes + b * R * F::bytes);
      for (int line = 0; line < (R * F::bytes + 63) / 64; ++line)
        _mm_prefetch(ahead + 64 * line, _MM_HINT_T0);
    }
    __m128i heads = _mm_cvtsi32_si128(load_u32(wb));
    if constexpr (R > 1) heads = _mm_insert_epi32(heads, load_u32(wb + row_bytes), 1);
    if constexpr (R > 2) heads = _mm_insert_epi32(heads, load_u32(wb + 2 * row_bytes), 2);
    if constexpr (R > 3) heads = _mm_insert_epi32(heads, load_u32(wb + 3 * row_bytes), 3);
    const __m256 dw = _mm256_cvtph_ps(heads);
    // Each row's scale goes through memory: a broadcast load costs no shuffle (vpermps per
    // row made the tile 25-30% slower on Zen 3).
    alignas(32) float scales[MT][8];
    __m256i xq[MT], bias[MT];
#pragma GCC unroll 4
    for (int i = 0; i < MT; ++i) {
      const ActivationBlock& a = x[i * x_stride + b];
      const __m256 s = _mm256_mul_ps(
          dw, _mm256_castpd_ps(_mm256_broadcast_sd(reinterpret_cast<const double*>(&a.d))));
      if constexpr (F::has_min) mins[i] = _mm256_add_ps(mins[i], s);
      _mm256_store_ps(scales[i], s);
      xq[i] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.q));
      bias[i] = F::bias(xq[i]);
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      const __m256i c = F::codes(wb + r * row_bytes);
#pragma GCC unroll 4
      for (int i = 0; i < MT; ++i) {
        const __m256 s = _mm256_broadcast_ss(&scales[i][2 * r]);
        acc[r][i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(F::dot(c, xq[i], bias[i])), s, acc[r][i]);
      }
    }
  }
#pragma GCC unroll 4
  for (int i = 0; i < MT; ++i)
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r)
      y[i * ldy + r] = (add_to_y ? y[i * ldy + r] : 0.f) + hsum(acc[r][i]) +
                       (F::has_min ? lane(mins[i], 2 * r + 1) : 0.f);
}

// Four weight rows of a 4-bit format x MT activation rows with one accumulator per activation
// row. Each row's 16 pair sums are small enough (<= 3810) that two rounds of hadd add them
// four at a time in int16 without overflow (<= 15240), leaving [row 0..3 | row 0..3] in one
// register: one int-to-float conversion and one FMA serve four rows, where the general tile
// spends one of each per row (the multiply and convert pipes are what limit it).
template <class F, int MT>
LOOM_AVX2 void tile4_packed(const uint8_t* w, int64_t row_bytes, int64_t blocks,
                            const ActivationBlock* x, int64_t x_stride, float* y, int64_t ldy,
                            bool add_to_y) {
  static_assert(F::small_pairs);
  __m256 acc[MT], mins[MT];
#pragma GCC unroll 4
  for (int i = 0; i < MT; ++i) acc[i] = mins[i] = _mm256_setzero_ps();
  const __m256i even = _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6);
  for (int64_t b = 0; b < blocks; ++b) {
    const uint8_t* wb = w + b * F::bytes;
    {  // as in tile
      const char* ahead = reinterpret_cast<const char*>(w + 4 * row_bytes + b * 4 * F::bytes);
      for (int line = 0; line < (4 * F::bytes + 63) / 64; ++line)
        _mm_prefetch(ahead + 64 * line, _MM_HINT_T0);
    }
    __m128i heads = _mm_cvtsi32_si128(load_u32(wb));
    heads = _mm_insert_epi32(heads, load_u32(wb + row_bytes), 1);
    heads = _mm_insert_epi32(heads, load_u32(wb + 2 * row_bytes), 2);
    heads = _mm_insert_epi32(heads, load_u32(wb + 3 * row_bytes), 3);
    const __m256 dw = _mm256_cvtph_ps(heads);
    const __m256i c0 = F::codes(wb), c1 = F::codes(wb + row_bytes);
    const __m256i c2 = F::codes(wb + 2 * row_bytes), c3 = F::codes(wb + 3 * row_bytes);
#pragma GCC unroll 4
    for (int i = 0; i < MT; ++i) {
      const ActivationBlock& a = x[i * x_stride + b];
      const __m256 scales = _mm256_mul_ps(
          dw, _mm256_castpd_ps(_mm256_broadcast_sd(reinterpret_cast<const double*>(&a.d))));
      if constexpr (F::has_min) mins[i] = _mm256_add_ps(mins[i], scales);
      const __m256i xq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.q));
      const __m256i bias = F::bias(xq);
      const __m256i h01 = _mm256_hadd_epi16(F::pairs(c0, xq, bias), F::pairs(c1, xq, bias));
      const __m256i h23 = _mm256_hadd_epi16(F::pairs(c2, xq, bias), F::pairs(c3, xq, bias));
      const __m256i sums = _mm256_madd_epi16(_mm256_hadd_epi16(h01, h23), _mm256_set1_epi16(1));
      acc[i] =
          _mm256_fmadd_ps(_mm256_cvtepi32_ps(sums), _mm256_permutevar8x32_ps(scales, even), acc[i]);
    }
  }
#pragma GCC unroll 4
  for (int i = 0; i < MT; ++i) {
    const __m128 four =
        _mm_add_ps(_mm256_castps256_ps128(acc[i]), _mm256_extractf128_ps(acc[i], 1));
    alignas(16) float out[4];
    _mm_store_ps(out, four);
    for (int r = 0; r < 4; ++r)
      y[i * ldy + r] = (add_to_y ? y[i * ldy + r] : 0.f) + out[r] +
                       (F::has_min ? lane(mins[i], 2 * r + 1) : 0.f);
  }
}

// Rows [row_begin, row_end) in tiles of R (the last few one at a time) for MT activation rows.
template <class F, int R, int MT>
LOOM_AVX2 void rows(const uint8_t* w, int64_t row_bytes, int64_t blocks, const ActivationBlock* x,
                    int64_t x_stride, int64_t row_begin, int64_t row_end, float* y, int64_t ldy,
                    bool add_to_y) {
  int64_t j = row_begin;
  constexpr bool packed = F::small_pairs;
  constexpr int step = packed ? 4 : R;
  for (; j + step <= row_end; j += step) {
    if constexpr (packed)
      tile4_packed<F, MT>(w + j * row_bytes, row_bytes, blocks, x, x_stride, y + j, ldy, add_to_y);
    else
      tile<F, R, MT>(w + j * row_bytes, row_bytes, blocks, x, x_stride, y + j, ldy, add_to_y);
  }
  for (; j < row_end; ++j)
    tile<F, 1, MT>(w + j * row_bytes, row_bytes, blocks, x, x_stride, y + j, ldy, add_to_y);
}

// Activation rows four at a time: each weight tile is reused by all of them while it is in L1.
// For one or two activation rows, four weight rows per tile; for three or four, two (the
// accumulators of a larger tile would not fit in 16 registers; the 4-bit formats always take
// tile4_packed, four rows).
//
// For more than four activation rows (prefill) the product is blocked: K in chunks of
// kChunkBlocks (4 activation rows of a chunk, 5 KB, and a weight tile's chunk stay in L1), and
// weight rows in panels of about kPanelBytes per chunk (in L2) that every group of activation
// rows passes over before the next panel. Without the K chunks, M = 128 and K = 4096 put x
// (655 KB) out of L2 and every panel streamed it from L3 again.
constexpr int64_t kChunkBlocks = 32;
constexpr int64_t kPanelBytes = 128 << 10;

template <class F>
LOOM_AVX2 void gemm(const uint8_t* w, int64_t row_bytes, int64_t blocks, const ActivationBlock* x,
                    int64_t m, int64_t row_begin, int64_t row_end, float* y, int64_t ldy) {
  const int64_t chunk = m <= 4 ? blocks : std::min(blocks, kChunkBlocks);
  const int64_t panel =
      m <= 4 ? row_end - row_begin : std::max<int64_t>(4, kPanelBytes / (chunk * F::bytes) / 4 * 4);
  for (int64_t p = row_begin; p < row_end; p += panel) {
    const int64_t p_end = std::min(row_end, p + panel);
    for (int64_t k0 = 0; k0 < blocks; k0 += chunk) {
      const int64_t nb = std::min(chunk, blocks - k0);
      const uint8_t* wk = w + k0 * F::bytes;
      const bool add = k0 > 0;
      for (int64_t i = 0; i < m; i += 4) {
        const ActivationBlock* xi = x + i * blocks + k0;
        float* yi = y + i * ldy;
        switch (std::min<int64_t>(4, m - i)) {
          case 1:
            rows<F, 4, 1>(wk, row_bytes, nb, xi, blocks, p, p_end, yi, ldy, add);
            break;
          case 2:
            rows<F, 4, 2>(wk, row_bytes, nb, xi, blocks, p, p_end, yi, ldy, add);
            break;
          case 3:
            rows<F, 2, 3>(wk, row_bytes, nb, xi, blocks, p, p_end, yi, ldy, add);
            break;
          default:
            rows<F, 2, 4>(wk, row_bytes, nb, xi, blocks, p, p_end, yi, ldy, add);
            break;
        }
      }
    }
  }
}

}  // namespace

bool avx2_gemm_supports(GgmlType type) {
  return type == GgmlType::Q4_0 || type == GgmlType::Q4_1 || type == GgmlType::Q8_0 ||
         type == GgmlType::Q5_0 || type == GgmlType::Q5_1 || type == GgmlType::IQ4_NL ||
         type == GgmlType::Q4_K || type == GgmlType::Q5_K || type == GgmlType::Q6_K;
}

void quantized_gemm_avx2(GgmlType type, const uint8_t* w, int64_t row_bytes, int64_t blocks,
                         const ActivationBlock* x, int64_t m, int64_t row_begin, int64_t row_end,
                         float* y, int64_t ldy) {
  switch (type) {
    case GgmlType::Q4_0:
      return gemm<Q4_0>(w, row_bytes, blocks, x, m, row_begin, row_end, y, ldy);
    case GgmlType::Q4_1:
      return gemm<Q4_1>(w, row_bytes, blocks, x, m, row_begin, row_end, y, ldy);
    case GgmlType::Q8_0:
      return gemm<Q8_0>(w, row_bytes, blocks, x, m, row_begin, row_end, y, ldy);
    case GgmlType::Q5_0:
      return gemm<Q5_0>(w, row_bytes, blocks, x, m, row_begin, row_end, y, ldy);
    case GgmlType::Q5_1:
      return gemm<Q5_1>(w, row_bytes, blocks, x, m, row_begin, row_end, y, ldy);
    case GgmlType::IQ4_NL:
      return gemm<IQ4_NL>(w, row_bytes, blocks, x, m, row_begin, row_end, y, ldy);
    case GgmlType::Q4_K:
      return quantized_gemm_q4_k_avx2(w, row_bytes, blocks, x, m, row_begin, row_end, y, ldy);
    case GgmlType::Q5_K:
      return quantized_gemm_q5_k_avx2(w, row_bytes, blocks, x, m, row_begin, row_end, y, ldy);
    case GgmlType::Q6_K:
      return quantized_gemm_q6_k_avx2(w, row_bytes, blocks, x, m, row_begin, row_end, y, ldy);
    default:
      break;
  }
}

// Same arithmetic as quantize_activations: 1 / d in float, x * (1 / d) rounded to nearest even
// (the default MXCSR mode, as std::nearbyint), so both give identical blocks.
LOOM_AVX2 void quantize_activations_avx2(const float* x, int64_t k, ActivationBlock* out) {
  const __m256 sign = _mm256_set1_ps(-0.f);
  for (int64_t b = 0; b < k / 32; ++b, x += 32) {
    __m256 v[4];
    __m256 amax = _mm256_setzero_ps();
    for (int j = 0; j < 4; ++j) {
      v[j] = _mm256_loadu_ps(x + 8 * j);
      amax = _mm256_max_ps(amax, _mm256_andnot_ps(sign, v[j]));
    }
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(amax), _mm256_extractf128_ps(amax, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    const float d = _mm_cvtss_f32(m4) / 127.f;
    const float inv = d > 0 ? 1.f / d : 0.f;
    const __m256 vinv = _mm256_set1_ps(inv);
    __m256i q[4];
    for (int j = 0; j < 4; ++j) q[j] = _mm256_cvtps_epi32(_mm256_mul_ps(v[j], vinv));
    // packs works within 128-bit lanes: the permute puts the 32 bytes back in order.
    const __m256i q16a = _mm256_packs_epi32(q[0], q[1]);
    const __m256i q16b = _mm256_packs_epi32(q[2], q[3]);
    __m256i q8 = _mm256_packs_epi16(q16a, q16b);
    q8 = _mm256_permutevar8x32_epi32(q8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    q8 = _mm256_max_epi8(q8, _mm256_set1_epi8(-127));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out[b].q), q8);
    const __m256i sums =
        _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), q8), _mm256_set1_epi16(1));
    __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(sums), _mm256_extracti128_si256(sums, 1));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4E));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xB1));
    out[b].d = d;
    out[b].s = d * float(_mm_cvtsi128_si32(s4));
  }
}

}  // namespace loom::quant::detail
