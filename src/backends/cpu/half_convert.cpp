// Block conversions between float and f16/bf16 (see half_convert.h).
#include "backends/cpu/half_convert.h"

#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define LOOM_HAVE_F16C_PATH 1
#endif

namespace loom::cpu {

namespace {

#if defined(LOOM_HAVE_F16C_PATH)
bool cpu_has_f16c() {
  static const bool has = __builtin_cpu_supports("avx") && __builtin_cpu_supports("f16c");
  return has;
}

__attribute__((target("avx,f16c"))) int64_t f16_to_float_f16c(const f16_t* src, float* dst,
                                                              int64_t n) {
  int64_t i = 0;
  for (; n - i >= 8; i += 8) {
    __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i));
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(h));
  }
  return i;
}

__attribute__((target("avx,f16c"))) int64_t float_to_f16_f16c(const float* src, f16_t* dst,
                                                              int64_t n) {
  int64_t i = 0;
  for (; n - i >= 8; i += 8) {
    __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), h);
  }
  return i;
}
#endif

}  // namespace

void convert_to_float(const f16_t* src, float* dst, int64_t n) {
  int64_t i = 0;
#if defined(LOOM_HAVE_F16C_PATH)
  if (cpu_has_f16c()) i = f16_to_float_f16c(src, dst, n);
#endif
  for (; i < n; ++i) dst[i] = f16_to_float(src[i].bits);
}

void convert_from_float(const float* src, f16_t* dst, int64_t n) {
  int64_t i = 0;
#if defined(LOOM_HAVE_F16C_PATH)
  if (cpu_has_f16c()) i = float_to_f16_f16c(src, dst, n);
#endif
  for (; i < n; ++i) dst[i].bits = float_to_f16(src[i]);
}

// The bf16 loops are branch-free so that the compiler vectorises them.
void convert_to_float(const bf16_t* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t u = uint32_t(src[i].bits) << 16;
    std::memcpy(dst + i, &u, 4);
  }
}

void convert_from_float(const float* src, bf16_t* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    uint32_t u;
    std::memcpy(&u, src + i, 4);
    const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
    const uint32_t quiet_nan = (u >> 16) | 0x40u;
    dst[i].bits = uint16_t((u & 0x7fffffffu) > 0x7f800000u ? quiet_nan : rounded);
  }
}

}  // namespace loom::cpu
