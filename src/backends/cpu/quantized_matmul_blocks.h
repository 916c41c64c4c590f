// What the portable and the AVX2 GGUF-block matmul share: int8 activation blocks and the
// entry points of the AVX2 kernels (quantized_matmul_avx2.cpp, compiled with target
// attributes; call them only when quant::cpu_has_avx2()).
#pragma once

#include <cstdint>

#include "io/ggml_types.h"

namespace loom::quant::detail {

// One block of 32 quantized activations: value = d * q; s = d * sum(q) serves Q4_1's min.
// d and s are adjacent so that one 64-bit broadcast gives [d, s, d, s, ...].
struct ActivationBlock {
  float d;
  float s;
  int8_t q[32];
};

// IQ4_NL's 16 levels (as ggml's kvalues_iq4nl), times the block scale.
inline constexpr int8_t kIq4nlLevels[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                            1,    13,   25,  38,  53,  69,  89,  113};

// Q4_K's 6-bit scale and min of sub-block j (0..7) from the 12 packed bytes (ggml's
// get_scale_min_k4).
inline void q4k_scale_min(int j, const uint8_t* s, int& scale, int& min) {
  if (j < 4) {
    scale = s[j] & 63;
    min = s[j + 4] & 63;
  } else {
    scale = (s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4);
    min = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
  }
}

// Quantizes `k` (a multiple of 32) floats as llama.cpp's Q8_0 does: d = max|x| / 127,
// q = round-to-nearest-even(x / d). The AVX2 version gives the same blocks bit for bit.
void quantize_activations(const float* x, int64_t k, ActivationBlock* out);
void quantize_activations_avx2(const float* x, int64_t k, ActivationBlock* out);

// Whether quantized_gemm_avx2 handles this weight type.
bool avx2_gemm_supports(io::GgmlType type);

// y[i * ldy + j] = row j of W · activation row i, for rows j in [row_begin, row_end) and every
// i < m. W: rows of `blocks` blocks, `row_bytes` apart; x: m rows of `blocks` ActivationBlocks.
void quantized_gemm_avx2(io::GgmlType type, const uint8_t* w, int64_t row_bytes, int64_t blocks,
                         const ActivationBlock* x, int64_t m, int64_t row_begin, int64_t row_end,
                         float* y, int64_t ldy);

// The same for Q4_K, Q5_K and Q6_K weights (blocks counts blocks of 32: eight per super-block).
void quantized_gemm_q4_k_avx2(const uint8_t* w, int64_t row_bytes, int64_t blocks,
                              const ActivationBlock* x, int64_t m, int64_t row_begin,
                              int64_t row_end, float* y, int64_t ldy);

void quantized_gemm_q5_k_avx2(const uint8_t* w, int64_t row_bytes, int64_t blocks,
                              const ActivationBlock* x, int64_t m, int64_t row_begin,
                              int64_t row_end, float* y, int64_t ldy);
void quantized_gemm_q6_k_avx2(const uint8_t* w, int64_t row_bytes, int64_t blocks,
                              const ActivationBlock* x, int64_t m, int64_t row_begin,
                              int64_t row_end, float* y, int64_t ldy);

}  // namespace loom::quant::detail
