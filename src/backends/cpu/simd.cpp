// Run-time choice of AVX2 / AVX-512 for the elementwise and reduction kernels (simd.h).
#include "backends/cpu/simd.h"

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstdlib>
#include <cstring>

#include "backends/cpu/exp_f32.h"
#include "backends/cpu/half_convert.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define LOOM_SIMD_X86 1
#else
#define LOOM_SIMD_X86 0
#endif

namespace loom::cpu {

namespace {

std::atomic<int> test_cap{-1};

// Columns of a GEMV block (gemv_columns): its accumulators, 8 KB, stay in L1, and each row
// streams by in 8 KB runs (two pages), long enough for the hardware prefetchers.
constexpr int64_t kGemvBlock = 2048;

// LOOM_CPU_SIMD=portable|avx2|avx512 caps the level (read on first use).
SimdLevel env_cap() {
  static const SimdLevel cap = [] {
    const char* v = std::getenv("LOOM_CPU_SIMD");
    if (v == nullptr) return SimdLevel::avx512;
    if (std::strcmp(v, "portable") == 0) return SimdLevel::portable;
    if (std::strcmp(v, "avx2") == 0) return SimdLevel::avx2;
    return SimdLevel::avx512;
  }();
  return cap;
}

template <SimdBinary Op>
inline float scalar_op(float a, float b) {
  if constexpr (Op == SimdBinary::add)
    return a + b;
  else if constexpr (Op == SimdBinary::sub)
    return a - b;
  else if constexpr (Op == SimdBinary::mul)
    return a * b;
  else
    return a / b;
}

namespace portable {
#include "backends/cpu/exp_kernel.inc"
}  // namespace portable

void sum_lanes_portable(const float* x, int64_t blocks, double* lanes) {
  for (int64_t blk = 0; blk < blocks; ++blk)
    for (int j = 0; j < 16; ++j) lanes[j] += double(x[blk * 16 + j]);
}

}  // namespace

#if LOOM_SIMD_X86

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
namespace avx2 {
namespace {
struct Isa {
  using V = __m256;
  static constexpr int64_t kWidth = 8;
  static V broadcast(float v) { return _mm256_set1_ps(v); }
  static V load(const float* p) { return _mm256_loadu_ps(p); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static void store(float* p, V v) { _mm256_storeu_ps(p, v); }
  static V load(const f16_t* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static void store(f16_t* p, V v) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
  }
  static V load(const bf16_t* p) {
    __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
  }
  // float_to_bf16 on 8 lanes: round to nearest even, NaNs quietened.
  static void store(bf16_t* p, V v) {
    const __m256i u = _mm256_castps_si256(v);
    const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
    const __m256i rounded = _mm256_srli_epi32(
        _mm256_add_epi32(_mm256_add_epi32(u, _mm256_set1_epi32(0x7fff)), lsb), 16);
    const __m256i quiet = _mm256_or_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(0x40));
    const __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, _mm256_set1_epi32(0x7fffffff)),
                                           _mm256_set1_epi32(0x7f800000));
    const __m256i r = _mm256_blendv_epi8(rounded, quiet, nan);
    // Pack the 8 32-bit lanes (each <= 0xffff) to 16 bits, in order.
    const __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(r, r), 0x08);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm256_castsi256_si128(packed));
  }
  static void sum_lanes(const float* x, int64_t blocks, double* lanes) {
    __m256d s0 = _mm256_loadu_pd(lanes), s1 = _mm256_loadu_pd(lanes + 4);
    __m256d s2 = _mm256_loadu_pd(lanes + 8), s3 = _mm256_loadu_pd(lanes + 12);
    for (int64_t blk = 0; blk < blocks; ++blk) {
      const float* p = x + blk * 16;
      s0 = _mm256_add_pd(s0, _mm256_cvtps_pd(_mm_loadu_ps(p)));
      s1 = _mm256_add_pd(s1, _mm256_cvtps_pd(_mm_loadu_ps(p + 4)));
      s2 = _mm256_add_pd(s2, _mm256_cvtps_pd(_mm_loadu_ps(p + 8)));
      s3 = _mm256_add_pd(s3, _mm256_cvtps_pd(_mm_loadu_ps(p + 12)));
    }
    _mm256_storeu_pd(lanes, s0);
    _mm256_storeu_pd(lanes + 4, s1);
    _mm256_storeu_pd(lanes + 8, s2);
    _mm256_storeu_pd(lanes + 12, s3);
  }
};
#include "backends/cpu/exp_kernel.inc"
#include "backends/cpu/simd_kernels.inc"
}  // namespace
}  // namespace avx2
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")
// GCC 12 warns about the deliberately undefined source operand inside its own AVX-512
// intrinsics (_mm512_undefined_epi32) once they are inlined.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
namespace avx512 {
namespace {
struct Isa {
  using V = __m512;
  static constexpr int64_t kWidth = 16;
  static V broadcast(float v) { return _mm512_set1_ps(v); }
  static V load(const float* p) { return _mm512_loadu_ps(p); }
  static V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static void store(float* p, V v) { _mm512_storeu_ps(p, v); }
  static V load(const f16_t* p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  static void store(f16_t* p, V v) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p),
                        _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
  }
  static V load(const bf16_t* p) {
    __m512i w = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    return _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
  }
  static void store(bf16_t* p, V v) {
    const __m512i u = _mm512_castps_si512(v);
    const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    const __m512i rounded = _mm512_srli_epi32(
        _mm512_add_epi32(_mm512_add_epi32(u, _mm512_set1_epi32(0x7fff)), lsb), 16);
    const __m512i quiet = _mm512_or_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40));
    const __mmask16 nan = _mm512_cmpgt_epu32_mask(
        _mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)), _mm512_set1_epi32(0x7f800000));
    const __m512i r = _mm512_mask_blend_epi32(nan, rounded, quiet);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), _mm512_cvtepi32_epi16(r));
  }
  static void sum_lanes(const float* x, int64_t blocks, double* lanes) {
    __m512d s0 = _mm512_loadu_pd(lanes), s1 = _mm512_loadu_pd(lanes + 8);
    for (int64_t blk = 0; blk < blocks; ++blk) {
      const float* p = x + blk * 16;
      s0 = _mm512_add_pd(s0, _mm512_cvtps_pd(_mm256_loadu_ps(p)));
      s1 = _mm512_add_pd(s1, _mm512_cvtps_pd(_mm256_loadu_ps(p + 8)));
    }
    _mm512_storeu_pd(lanes, s0);
    _mm512_storeu_pd(lanes + 8, s1);
  }
};
#include "backends/cpu/exp_kernel.inc"
#include "backends/cpu/simd_kernels.inc"
}  // namespace
}  // namespace avx512
#pragma GCC diagnostic pop
#pragma GCC pop_options

#endif  // LOOM_SIMD_X86

const char* simd_level_name(SimdLevel level) {
  switch (level) {
    case SimdLevel::avx512:
      return "avx512";
    case SimdLevel::avx2:
      return "avx2";
    default:
      return "portable";
  }
}

SimdLevel cpu_simd_level() {
  // Asked on first use, not in a static initialiser (which may run before the CPU-feature
  // data is filled in).
  static const SimdLevel level = [] {
#if LOOM_SIMD_X86
    __builtin_cpu_init();
    const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                      __builtin_cpu_supports("f16c");
    if (avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl"))
      return SimdLevel::avx512;
    if (avx2) return SimdLevel::avx2;
#endif
    return SimdLevel::portable;
  }();
  return level;
}

SimdLevel simd_level() {
  int level = std::min(int(cpu_simd_level()), int(env_cap()));
  const int cap = test_cap.load(std::memory_order_relaxed);
  if (cap >= 0) level = std::min(level, cap);
  return SimdLevel(level);
}

void set_simd_level_for_testing(std::optional<SimdLevel> cap) {
  test_cap.store(cap ? int(*cap) : -1, std::memory_order_relaxed);
}

namespace {
template <class T>
bool binary_any(SimdBinary op, const T* a, int64_t sa, const T* b, int64_t sb, T* y, int64_t n) {
#if LOOM_SIMD_X86
  switch (simd_level()) {
    case SimdLevel::avx512:
      avx512::binary_dispatch(op, a, sa, b, sb, y, n);
      return true;
    case SimdLevel::avx2:
      avx2::binary_dispatch(op, a, sa, b, sb, y, n);
      return true;
    default:
      break;
  }
#else
  (void)op, (void)a, (void)sa, (void)b, (void)sb, (void)y, (void)n;
#endif
  return false;
}
}  // namespace

bool simd_binary(SimdBinary op, const float* a, int64_t sa, const float* b, int64_t sb, float* y,
                 int64_t n) {
  return binary_any(op, a, sa, b, sb, y, n);
}
bool simd_binary(SimdBinary op, const f16_t* a, int64_t sa, const f16_t* b, int64_t sb, f16_t* y,
                 int64_t n) {
  return binary_any(op, a, sa, b, sb, y, n);
}
bool simd_binary(SimdBinary op, const bf16_t* a, int64_t sa, const bf16_t* b, int64_t sb, bf16_t* y,
                 int64_t n) {
  return binary_any(op, a, sa, b, sb, y, n);
}

namespace {
template <class T>
void exp_any(const T* x, int64_t sx, T* y, int64_t n) {
  if (sx != 1) {
    for (int64_t i = 0; i < n; ++i) store(y + i, exp_f32(load(x + i * sx)));
    return;
  }
  switch (simd_level()) {
#if LOOM_SIMD_X86
    case SimdLevel::avx512:
      return avx512::exp_contiguous(x, y, n);
    case SimdLevel::avx2:
      return avx2::exp_contiguous(x, y, n);
#endif
    default:
      return portable::exp_contiguous(x, y, n);
  }
}
}  // namespace

void simd_exp(const float* x, int64_t sx, float* y, int64_t n) { exp_any(x, sx, y, n); }
void simd_exp(const f16_t* x, int64_t sx, f16_t* y, int64_t n) { exp_any(x, sx, y, n); }
void simd_exp(const bf16_t* x, int64_t sx, bf16_t* y, int64_t n) { exp_any(x, sx, y, n); }

bool simd_gemv(const float* x, const float* b, int64_t ldb, int64_t k, int64_t n, float* y) {
#if LOOM_SIMD_X86
  const SimdLevel level = simd_level();
  if (level == SimdLevel::portable) return false;
  const int64_t blocks = (n + kGemvBlock - 1) / kGemvBlock;
  // Blocks of columns on threads; each column's sum is the same whatever the split.
  parallel_for(blocks, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(k * kGemvBlock, 1)),
               [&](int64_t blk) {
                 const int64_t j0 = blk * kGemvBlock, j1 = std::min(n, j0 + kGemvBlock);
                 if (level == SimdLevel::avx512)
                   avx512::gemv_columns(x, b, ldb, k, j0, j1, y);
                 else
                   avx2::gemv_columns(x, b, ldb, k, j0, j1, y);
               });
  return true;
#else
  (void)x, (void)b, (void)ldb, (void)k, (void)n, (void)y;
  return false;
#endif
}

double sum_f32(const float* x, int64_t n) {
  double lanes[16] = {};
  const int64_t blocks = n / 16;
  switch (simd_level()) {
#if LOOM_SIMD_X86
    case SimdLevel::avx512:
      avx512::sum_lanes(x, blocks, lanes);
      break;
    case SimdLevel::avx2:
      avx2::sum_lanes(x, blocks, lanes);
      break;
#endif
    default:
      sum_lanes_portable(x, blocks, lanes);
      break;
  }
  for (int width = 8; width >= 1; width /= 2)
    for (int j = 0; j < width; ++j) lanes[j] += lanes[j + width];
  double sum = lanes[0];
  for (int64_t i = blocks * 16; i < n; ++i) sum += double(x[i]);
  return sum;
}

}  // namespace loom::cpu
