// CPU kernel of scaled_dot_product_attention: tiled online softmax (flash attention on the
// CPU). A task is (batch, kv head, tile of queries) and holds every query head of that kv
// head's group, so each K/V tile is converted to f32 once and used by G = Hq / Hkv heads.
// Extra memory is O(tile) per thread; the Sq x Skv scores never exist. An int8 cache (i8 K/V
// with an f32 scale per key) is read as it is: each tile is expanded to f32 like an f16 one.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "backends/cpu/cpu_kernels.h"
#include "backends/cpu/dispatch.h"
#include "backends/cpu/exp_f32.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define LOOM_ATTENTION_AVX2 1
#endif

namespace loom::cpu {

namespace {

constexpr int64_t kKeyTile = 64;
constexpr int64_t kRowsPerTask = 64;  // query rows (heads x positions) per task
constexpr int64_t kDecodeRows = 8;    // up to this many rows a task, K/V rows are read in place
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

struct Geometry {
  int64_t batch, q_heads, kv_heads, group, q_len, kv_cap, dim;
  float scale;
  bool causal;
  int64_t window;
  // Mask element strides over [B, Hq, Sq, Skv]; 0 on broadcast dims.
  const void* mask = nullptr;
  bool mask_bool = false;
  int64_t mask_stride[4] = {0, 0, 0, 0};
  const void* kv_len = nullptr;
  DType kv_len_dtype = DType::i64;
  int64_t kv_len_count = 0;
  // int8 K/V: f32 [B, Hkv, Skv] scales; null for float K/V.
  const float* k_scale = nullptr;
  const float* v_scale = nullptr;
};

int64_t valid_keys(const Geometry& g, int64_t b) {
  if (!g.kv_len) return g.kv_cap;
  int64_t n = load_index(g.kv_len, g.kv_len_dtype, g.kv_len_count == 1 ? 0 : b);
  return std::clamp<int64_t>(n, 0, g.kv_cap);
}

// Portable loops: eight partial sums so the compiler vectorises the dot product (SSE at the
// build's x86-64-v2) without reassociating.
inline float dot_portable(const float* a, const float* b, int64_t n) {
  float partial[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; ++l) partial[l] += a[i + l] * b[i + l];
  float sum = 0;
  for (; i < n; ++i) sum += a[i] * b[i];
  for (int l = 0; l < 8; ++l) sum += partial[l];
  return sum;
}

inline void axpy_portable(float p, const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += p * x[i];
}

// Four rows at once (rows `stride` floats apart): four dot products with one k row, and one v
// row added into four accumulator rows, so each k and v row is read once per four query rows.
inline void dot4_portable(const float* q, int64_t stride, const float* k, int64_t n, float* out) {
  for (int r = 0; r < 4; ++r) out[r] = dot_portable(q + r * stride, k, n);
}

inline void axpy4_portable(const float* p, const float* v, float* acc, int64_t stride, int64_t n) {
  for (int r = 0; r < 4; ++r) axpy_portable(p[r], v, acc + r * stride, n);
}

// A whole tile as two small matrix products. Scores s[r][j] = q_r · k_j for `rows` rows of q
// (stride D) and `n` keys given transposed, kt[d][j] (stride kKeyTile); s has stride
// kKeyTile. Then acc[r][:] += sum_j p[r][j] v[j][:] (p stride kKeyTile, v rows stride D).
inline void tile_scores_portable(const float* q, int64_t rows, int64_t D, const float* kt,
                                 int64_t n, float* s) {
  for (int64_t r = 0; r < rows; ++r) {
    float* sr = s + r * kKeyTile;
    std::fill_n(sr, n, 0.f);
    for (int64_t d = 0; d < D; ++d) {
      const float qd = q[r * D + d];
      const float* kd = kt + d * kKeyTile;
      for (int64_t j = 0; j < n; ++j) sr[j] += qd * kd[j];
    }
  }
}

inline void tile_pv_portable(const float* p, int64_t rows, int64_t n, const float* v, int64_t D,
                             float* acc) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < n; ++j) axpy_portable(p[r * kKeyTile + j], v + j * D, acc + r * D, D);
}

#if LOOM_ATTENTION_AVX2
// AVX2 + FMA (+ F16C for f16 tiles), chosen at run time: the build itself targets x86-64-v2.
// Asked on first use (not in a static initialiser, which may run before the CPU-feature
// data is filled in).
bool has_avx2() {
  static const bool yes = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
           __builtin_cpu_supports("f16c");
  }();
  return yes;
}

__attribute__((target("avx2,fma"))) float dot_avx2(const float* a, const float* b, int64_t n) {
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
  }
  for (; i + 8 <= n; i += 8)
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
  s0 = _mm256_add_ps(s0, s1);
  __m128 h = _mm_add_ps(_mm256_castps256_ps128(s0), _mm256_extractf128_ps(s0, 1));
  h = _mm_hadd_ps(h, h);
  h = _mm_hadd_ps(h, h);
  float sum = _mm_cvtss_f32(h);
  for (; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

__attribute__((target("avx2,fma"))) void axpy_avx2(float p, const float* x, float* y, int64_t n) {
  __m256 pv = _mm256_set1_ps(p);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(y + i, _mm256_fmadd_ps(pv, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
  for (; i < n; ++i) y[i] += p * x[i];
}

__attribute__((target("avx2,fma"))) float horizontal_sum(__m256 v) {
  __m128 h = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  h = _mm_hadd_ps(h, h);
  h = _mm_hadd_ps(h, h);
  return _mm_cvtss_f32(h);
}

__attribute__((target("avx2,fma"))) void dot4_avx2(const float* q, int64_t stride, const float* k,
                                                   int64_t n, float* out) {
  __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 kv = _mm256_loadu_ps(k + i);
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), kv, s0);
    s1 = _mm256_fmadd_ps(_mm256_loadu_ps(q + stride + i), kv, s1);
    s2 = _mm256_fmadd_ps(_mm256_loadu_ps(q + 2 * stride + i), kv, s2);
    s3 = _mm256_fmadd_ps(_mm256_loadu_ps(q + 3 * stride + i), kv, s3);
  }
  out[0] = horizontal_sum(s0);
  out[1] = horizontal_sum(s1);
  out[2] = horizontal_sum(s2);
  out[3] = horizontal_sum(s3);
  for (; i < n; ++i)
    for (int r = 0; r < 4; ++r) out[r] += q[r * stride + i] * k[i];
}

__attribute__((target("avx2,fma"))) void axpy4_avx2(const float* p, const float* v, float* acc,
                                                    int64_t stride, int64_t n) {
  const __m256 p0 = _mm256_set1_ps(p[0]), p1 = _mm256_set1_ps(p[1]), p2 = _mm256_set1_ps(p[2]),
               p3 = _mm256_set1_ps(p[3]);
  float *a0 = acc, *a1 = acc + stride, *a2 = acc + 2 * stride, *a3 = acc + 3 * stride;
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 vv = _mm256_loadu_ps(v + i);
    _mm256_storeu_ps(a0 + i, _mm256_fmadd_ps(p0, vv, _mm256_loadu_ps(a0 + i)));
    _mm256_storeu_ps(a1 + i, _mm256_fmadd_ps(p1, vv, _mm256_loadu_ps(a1 + i)));
    _mm256_storeu_ps(a2 + i, _mm256_fmadd_ps(p2, vv, _mm256_loadu_ps(a2 + i)));
    _mm256_storeu_ps(a3 + i, _mm256_fmadd_ps(p3, vv, _mm256_loadu_ps(a3 + i)));
  }
  for (; i < n; ++i) {
    a0[i] += p[0] * v[i];
    a1[i] += p[1] * v[i];
    a2[i] += p[2] * v[i];
    a3[i] += p[3] * v[i];
  }
}

// tile_scores in blocks of 4 rows x 16 keys (8 accumulators; q broadcast, kᵀ rows loaded),
// tile_pv in blocks of 4 rows x 16 dims (p broadcast, v rows loaded): no horizontal sums, each
// loaded vector used by four rows. Edges go through the portable loops.
__attribute__((target("avx2,fma"))) void tile_scores_avx2(const float* q, int64_t rows, int64_t D,
                                                          const float* kt, int64_t n, float* s) {
  const int64_t rows4 = rows / 4 * 4, n16 = n / 16 * 16;
  for (int64_t r0 = 0; r0 < rows4; r0 += 4) {
    for (int64_t j0 = 0; j0 < n16; j0 += 16) {
      __m256 a[4][2];
      for (int i = 0; i < 4; ++i) a[i][0] = a[i][1] = _mm256_setzero_ps();
      for (int64_t d = 0; d < D; ++d) {
        const __m256 k0 = _mm256_loadu_ps(kt + d * kKeyTile + j0);
        const __m256 k1 = _mm256_loadu_ps(kt + d * kKeyTile + j0 + 8);
        for (int i = 0; i < 4; ++i) {
          const __m256 b = _mm256_broadcast_ss(q + (r0 + i) * D + d);
          a[i][0] = _mm256_fmadd_ps(b, k0, a[i][0]);
          a[i][1] = _mm256_fmadd_ps(b, k1, a[i][1]);
        }
      }
      for (int i = 0; i < 4; ++i) {
        _mm256_storeu_ps(s + (r0 + i) * kKeyTile + j0, a[i][0]);
        _mm256_storeu_ps(s + (r0 + i) * kKeyTile + j0 + 8, a[i][1]);
      }
    }
    for (int64_t j = n16; j < n; ++j)
      for (int i = 0; i < 4; ++i) {
        float sum = 0;
        for (int64_t d = 0; d < D; ++d) sum += q[(r0 + i) * D + d] * kt[d * kKeyTile + j];
        s[(r0 + i) * kKeyTile + j] = sum;
      }
  }
  tile_scores_portable(q + rows4 * D, rows - rows4, D, kt, n, s + rows4 * kKeyTile);
}

__attribute__((target("avx2,fma"))) void tile_pv_avx2(const float* p, int64_t rows, int64_t n,
                                                      const float* v, int64_t D, float* acc) {
  const int64_t rows4 = rows / 4 * 4, d16 = D / 16 * 16;
  for (int64_t r0 = 0; r0 < rows4; r0 += 4) {
    for (int64_t d0 = 0; d0 < d16; d0 += 16) {
      __m256 a[4][2];
      for (int i = 0; i < 4; ++i) {
        a[i][0] = _mm256_loadu_ps(acc + (r0 + i) * D + d0);
        a[i][1] = _mm256_loadu_ps(acc + (r0 + i) * D + d0 + 8);
      }
      for (int64_t j = 0; j < n; ++j) {
        const __m256 v0 = _mm256_loadu_ps(v + j * D + d0);
        const __m256 v1 = _mm256_loadu_ps(v + j * D + d0 + 8);
        for (int i = 0; i < 4; ++i) {
          const __m256 b = _mm256_broadcast_ss(p + (r0 + i) * kKeyTile + j);
          a[i][0] = _mm256_fmadd_ps(b, v0, a[i][0]);
          a[i][1] = _mm256_fmadd_ps(b, v1, a[i][1]);
        }
      }
      for (int i = 0; i < 4; ++i) {
        _mm256_storeu_ps(acc + (r0 + i) * D + d0, a[i][0]);
        _mm256_storeu_ps(acc + (r0 + i) * D + d0 + 8, a[i][1]);
      }
    }
    for (int i = 0; i < 4; ++i)
      for (int64_t j = 0; j < n; ++j) {
        const float pj = p[(r0 + i) * kKeyTile + j];
        for (int64_t d = d16; d < D; ++d) acc[(r0 + i) * D + d] += pj * v[j * D + d];
      }
  }
  tile_pv_portable(p + rows4 * kKeyTile, rows - rows4, n, v, D, acc + rows4 * D);
}

// n codes times one scale (a key's row of an int8 cache).
__attribute__((target("avx2"))) void i8_row_to_f32(const int8_t* src, float scale, float* dst,
                                                   int64_t n) {
  const __m256 s = _mm256_set1_ps(scale);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m128i codes = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(src + i));
    _mm256_storeu_ps(dst + i, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(codes)), s));
  }
  for (; i < n; ++i) dst[i] = scale * float(src[i]);
}

__attribute__((target("avx2,f16c"))) void f16_tile_to_f32(const f16_t* src, float* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(dst + i,
                     _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i))));
  for (; i < n; ++i) dst[i] = f16_to_float(src[i].bits);
}
#endif

inline float dot(const float* a, const float* b, int64_t n) {
#if LOOM_ATTENTION_AVX2
  if (has_avx2()) return dot_avx2(a, b, n);
#endif
  return dot_portable(a, b, n);
}

inline void axpy(float p, const float* x, float* y, int64_t n) {
#if LOOM_ATTENTION_AVX2
  if (has_avx2()) return axpy_avx2(p, x, y, n);
#endif
  axpy_portable(p, x, y, n);
}

inline void dot4(const float* q, int64_t stride, const float* k, int64_t n, float* out) {
#if LOOM_ATTENTION_AVX2
  if (has_avx2()) return dot4_avx2(q, stride, k, n, out);
#endif
  dot4_portable(q, stride, k, n, out);
}

inline void axpy4(const float* p, const float* v, float* acc, int64_t stride, int64_t n) {
#if LOOM_ATTENTION_AVX2
  if (has_avx2()) return axpy4_avx2(p, v, acc, stride, n);
#endif
  axpy4_portable(p, v, acc, stride, n);
}

inline void tile_scores(const float* q, int64_t rows, int64_t D, const float* kt, int64_t n,
                        float* s) {
#if LOOM_ATTENTION_AVX2
  if (has_avx2()) return tile_scores_avx2(q, rows, D, kt, n, s);
#endif
  tile_scores_portable(q, rows, D, kt, n, s);
}

inline void tile_pv(const float* p, int64_t rows, int64_t n, const float* v, int64_t D,
                    float* acc) {
#if LOOM_ATTENTION_AVX2
  if (has_avx2()) return tile_pv_avx2(p, rows, n, v, D, acc);
#endif
  tile_pv_portable(p, rows, n, v, D, acc);
}

template <class T>
void to_f32(const T* src, float* dst, int64_t n) {
#if LOOM_ATTENTION_AVX2
  if constexpr (std::is_same_v<T, f16_t>) {
    if (has_avx2()) return f16_tile_to_f32(src, dst, n);
  }
#endif
  for (int64_t i = 0; i < n; ++i) dst[i] = float(load(src + i));
}

// `rows` rows of D codes, row j times scale[j].
inline void i8_rows_to_f32(const int8_t* src, const float* scale, float* dst, int64_t rows,
                           int64_t D) {
  for (int64_t j = 0; j < rows; ++j) {
#if LOOM_ATTENTION_AVX2
    if (has_avx2()) {
      i8_row_to_f32(src + j * D, scale[j], dst + j * D, D);
      continue;
    }
#endif
    for (int64_t d = 0; d < D; ++d) dst[j * D + d] = scale[j] * float(src[j * D + d]);
  }
}

// T: q's (and the output's) dtype; KV: k's and v's, T or int8_t.
template <class T, class KV>
struct Task {
  const Geometry& g;
  const T* q;
  const KV* k;
  const KV* v;
  T* out;
  // Work buffers of this thread.
  std::vector<float> qf, acc, scores, kf, vf, k_transposed, m, l;
  std::vector<int64_t> first_key, end_key;

  Task(const Geometry& geo, const T* q_, const KV* k_, const KV* v_, T* out_)
      : g(geo), q(q_), k(k_), v(v_), out(out_) {
    size_t rows = size_t(kRowsPerTask), d = size_t(g.dim), tile = size_t(kKeyTile);
    qf.resize(rows * d);
    acc.resize(rows * d);
    scores.resize(rows * tile);
    kf.resize(tile * d);
    vf.resize(tile * d);
    k_transposed.resize(tile * d);
    m.resize(rows);
    l.resize(rows);
    first_key.resize(rows);
    end_key.resize(rows);
  }

  // The task run() is on: batch row, kv head, its first query head and count, first position.
  int64_t b_ = 0, kvh_ = 0, head0_ = 0, heads_ = 1, s0_ = 0;
  int64_t position_of(int64_t r) const { return s0_ + r / heads_; }
  int64_t head_of(int64_t r) const { return kvh_ * g.group + head0_ + r % heads_; }

  float mask_value(int64_t b, int64_t h, int64_t s, int64_t j) const {
    int64_t at =
        b * g.mask_stride[0] + h * g.mask_stride[1] + s * g.mask_stride[2] + j * g.mask_stride[3];
    if (g.mask_bool) return static_cast<const uint8_t*>(g.mask)[at] ? 0.f : kNegInf;
    return float(load(static_cast<const T*>(g.mask) + at));
  }

  // One query row against keys [j0, j0 + tile) (K and V rows at kt, vt): scores, the online
  // softmax update, P v into the row's accumulator.
  void one_row(int64_t r, int64_t j0, int64_t tile, const float* kt, const float* vt) {
    const int64_t D = g.dim;
    int64_t lo = std::max(first_key[size_t(r)] - j0, int64_t(0));
    int64_t hi = std::min(end_key[size_t(r)] - j0, tile);
    if (lo >= hi) return;
    int64_t s = position_of(r), h = head_of(r);
    float* sc = &scores[size_t(r * kKeyTile)];
    const float* qr = &qf[size_t(r * D)];
    float tile_max = kNegInf;
    for (int64_t j = lo; j < hi; ++j) {
      float x = dot(qr, kt + j * D, D);
      if (g.mask) x += mask_value(b_, h, s, j0 + j);
      sc[j] = x;
      tile_max = std::max(tile_max, x);
    }
    if (tile_max == kNegInf) return;  // every key of this tile masked out
    float m_new = std::max(m[size_t(r)], tile_max);
    float alpha = std::exp(m[size_t(r)] - m_new);  // 0 when nothing was seen yet
    float* ar = &acc[size_t(r * D)];
    if (alpha != 1.f)
      for (int64_t d = 0; d < D; ++d) ar[d] *= alpha;
    // The tile's exponentials in one branch-free loop the compiler vectorises.
    for (int64_t j = lo; j < hi; ++j) sc[j] = exp_f32(sc[j] - m_new);
    float sum = 0;
    for (int64_t j = lo; j < hi; ++j) {
      sum += sc[j];
      axpy(sc[j], vt + j * D, ar, D);
    }
    l[size_t(r)] = l[size_t(r)] * alpha + sum;
    m[size_t(r)] = m_new;
  }

  // The mask's values for row r at keys [key0, key0 + n) added to sc (bool: -inf where false).
  void add_mask_row(int64_t r, int64_t key0, int64_t n, float* sc) const {
    const int64_t at = b_ * g.mask_stride[0] + head_of(r) * g.mask_stride[1] +
                       position_of(r) * g.mask_stride[2] + key0 * g.mask_stride[3];
    const int64_t step = g.mask_stride[3];
    if (g.mask_bool) {
      const uint8_t* keep = static_cast<const uint8_t*>(g.mask) + at;
      for (int64_t j = 0; j < n; ++j)
        if (!keep[j * step]) sc[j] = kNegInf;
    } else {
      const T* add = static_cast<const T*>(g.mask) + at;
      for (int64_t j = 0; j < n; ++j) sc[j] += float(load(add + j * step));
    }
  }

  // Every row against keys [j0, j0 + tile) as two small matrix products: the scores of all rows
  // over the keys any row sees (tile_scores on kᵀ), the mask added, each row's hidden keys set
  // to -inf (weight exactly 0; like any matrix product, P v still multiplies their v rows,
  // which are keys below kv_len), the online softmax per row, then P v (tile_pv).
  void whole_tile(int64_t rows, int64_t j0, int64_t tile, const float* kt, const float* vt) {
    const int64_t D = g.dim;
    int64_t first = tile, end = 0;
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t lo = std::max(first_key[size_t(r)] - j0, int64_t(0));
      const int64_t hi = std::min(end_key[size_t(r)] - j0, tile);
      if (lo < hi) first = std::min(first, lo), end = std::max(end, hi);
    }
    if (first >= end) return;
    const int64_t n = end - first;
    for (int64_t j = 0; j < n; ++j)
      for (int64_t d = 0; d < D; ++d)
        k_transposed[size_t(d * kKeyTile + j)] = kt[(first + j) * D + d];
    tile_scores(qf.data(), rows, D, k_transposed.data(), n, scores.data());
    for (int64_t r = 0; r < rows; ++r) {
      float* sc = &scores[size_t(r * kKeyTile)];
      const int64_t lo = std::max(first_key[size_t(r)] - j0, int64_t(0)) - first;
      const int64_t hi = std::min(end_key[size_t(r)] - j0, tile) - first;
      if (g.mask) add_mask_row(r, j0 + first, n, sc);
      float tile_max = kNegInf;
      for (int64_t j = 0; j < n; ++j) {
        if (j < lo || j >= hi) sc[j] = kNegInf;
        tile_max = std::max(tile_max, sc[j]);
      }
      if (tile_max == kNegInf) {  // this row sees none of these keys
        std::fill_n(sc, n, 0.f);
        continue;
      }
      const float m_new = std::max(m[size_t(r)], tile_max);
      const float alpha = std::exp(m[size_t(r)] - m_new);  // 0 when nothing was seen yet
      float* ar = &acc[size_t(r * D)];
      if (alpha != 1.f)
        for (int64_t d = 0; d < D; ++d) ar[d] *= alpha;
      for (int64_t j = 0; j < n; ++j) sc[j] = exp_f32(sc[j] - m_new);
      float sum = 0;
      for (int64_t j = 0; j < n; ++j) sum += sc[j];
      l[size_t(r)] = l[size_t(r)] * alpha + sum;
      m[size_t(r)] = m_new;
    }
    tile_pv(scores.data(), rows, n, vt + first * D, D, acc.data());
  }

  // Rows r0 .. r0 + 3 together: each K and V row of the tile is read once for the four (dot4,
  // axpy4). Keys outside a row's own range (causal, window, kv_len) score -inf, so their
  // weight is exactly 0 and they are not added.
  void block_of_four(int64_t r0, int64_t j0, int64_t tile, const float* kt, const float* vt) {
    const int64_t D = g.dim;
    int64_t lo[4], hi[4], lo_all = tile, hi_all = 0;
    for (int i = 0; i < 4; ++i) {
      lo[i] = std::max(first_key[size_t(r0 + i)] - j0, int64_t(0));
      hi[i] = std::min(end_key[size_t(r0 + i)] - j0, tile);
      if (lo[i] < hi[i]) lo_all = std::min(lo_all, lo[i]), hi_all = std::max(hi_all, hi[i]);
    }
    if (lo_all >= hi_all) return;
    float* sc[4];
    for (int i = 0; i < 4; ++i) sc[i] = &scores[size_t((r0 + i) * kKeyTile)];
    for (int64_t j = lo_all; j < hi_all; ++j) {
      float x[4];
      dot4(&qf[size_t(r0 * D)], D, kt + j * D, D, x);
      for (int i = 0; i < 4; ++i) {
        float v = kNegInf;
        if (j >= lo[i] && j < hi[i]) {
          v = x[i];
          if (g.mask) v += mask_value(b_, head_of(r0 + i), position_of(r0 + i), j0 + j);
        }
        sc[i][j] = v;
      }
    }
    for (int i = 0; i < 4; ++i) {
      float tile_max = kNegInf;
      for (int64_t j = lo_all; j < hi_all; ++j) tile_max = std::max(tile_max, sc[i][j]);
      if (tile_max == kNegInf) {  // every key of this tile hidden from this row
        std::fill(sc[i] + lo_all, sc[i] + hi_all, 0.f);
        continue;
      }
      const int64_t r = r0 + i;
      float m_new = std::max(m[size_t(r)], tile_max);
      float alpha = std::exp(m[size_t(r)] - m_new);  // 0 when nothing was seen yet
      float* ar = &acc[size_t(r * D)];
      if (alpha != 1.f)
        for (int64_t d = 0; d < D; ++d) ar[d] *= alpha;
      float sum = 0;
      for (int64_t j = lo_all; j < hi_all; ++j) sc[i][j] = exp_f32(sc[i][j] - m_new);
      for (int64_t j = lo_all; j < hi_all; ++j) sum += sc[i][j];
      l[size_t(r)] = l[size_t(r)] * alpha + sum;
      m[size_t(r)] = m_new;
    }
    for (int64_t j = lo_all; j < hi_all; ++j) {
      const float p[4] = {sc[0][j], sc[1][j], sc[2][j], sc[3][j]};
      if (p[0] != 0.f && p[1] != 0.f && p[2] != 0.f && p[3] != 0.f) {
        axpy4(p, vt + j * D, &acc[size_t(r0 * D)], D, D);
      } else {
        for (int i = 0; i < 4; ++i)
          if (p[i] != 0.f) axpy(p[i], vt + j * D, &acc[size_t((r0 + i) * D)], D);
      }
    }
  }

  // Rows are (position, head) pairs, position-major: row r is position s0 + r / heads of
  // query head kvh * G + head0 + r % heads. rows <= kRowsPerTask.
  void run(int64_t b, int64_t kvh, int64_t head0, int64_t heads, int64_t s0, int64_t s_count) {
    const int64_t D = g.dim, rows = s_count * heads;
    const int64_t keys = valid_keys(g, b);
    const int64_t shift = keys - g.q_len;  // query s is at key position s + shift
    int64_t lo_all = keys, hi_all = 0;
    b_ = b;
    kvh_ = kvh;
    head0_ = head0;
    heads_ = heads;
    s0_ = s0;
    for (int64_t r = 0; r < rows; ++r) {
      int64_t s = position_of(r), h = head_of(r);
      int64_t pos = s + shift;
      int64_t lo = 0, hi = keys;
      if (g.causal) hi = std::clamp<int64_t>(pos + 1, 0, keys);
      if (g.window > 0) lo = std::clamp<int64_t>(pos - g.window + 1, 0, keys);
      first_key[size_t(r)] = lo;
      end_key[size_t(r)] = std::max(lo, hi);
      if (lo < hi) lo_all = std::min(lo_all, lo), hi_all = std::max(hi_all, hi);
      to_f32(q + ((b * g.q_heads + h) * g.q_len + s) * D, &qf[size_t(r * D)], D);
      for (int64_t d = 0; d < D; ++d) qf[size_t(r * D + d)] *= g.scale;
      std::fill_n(&acc[size_t(r * D)], D, 0.f);
      m[size_t(r)] = kNegInf;
      l[size_t(r)] = 0.f;
    }
    const KV* kb = k + (b * g.kv_heads + kvh) * g.kv_cap * D;
    const KV* vb = v + (b * g.kv_heads + kvh) * g.kv_cap * D;
    for (int64_t j0 = lo_all; j0 < hi_all; j0 += kKeyTile) {
      int64_t tile = std::min(kKeyTile, hi_all - j0);
      // The tile as f32 rows: f32 caches are read where they are (no copy).
      const float* kt = kf.data();
      const float* vt = vf.data();
      if constexpr (std::is_same_v<KV, int8_t>) {
        const int64_t scales = (b * g.kv_heads + kvh) * g.kv_cap + j0;
        i8_rows_to_f32(kb + j0 * D, g.k_scale + scales, kf.data(), tile, D);
        i8_rows_to_f32(vb + j0 * D, g.v_scale + scales, vf.data(), tile, D);
      } else if constexpr (std::is_same_v<KV, float>) {
        kt = kb + j0 * D;
        vt = vb + j0 * D;
      } else {
        to_f32(kb + j0 * D, kf.data(), tile * D);
        to_f32(vb + j0 * D, vf.data(), tile * D);
      }
      // Many rows (prefill) amortise whole_tile's transposed copy of K; a decode step's few
      // rows (a group of heads) read K and V rows directly, four rows at a time.
      if (rows > kDecodeRows) {
        whole_tile(rows, j0, tile, kt, vt);
        continue;
      }
      int64_t r = 0;
      for (; r + 4 <= rows; r += 4) block_of_four(r, j0, tile, kt, vt);
      for (; r < rows; ++r) one_row(r, j0, tile, kt, vt);
    }
    for (int64_t r = 0; r < rows; ++r) {
      int64_t s = position_of(r), h = head_of(r);
      T* o = out + ((b * g.q_heads + h) * g.q_len + s) * D;
      float inv = l[size_t(r)] > 0 ? 1.f / l[size_t(r)] : 0.f;  // no visible key: zeros
      for (int64_t d = 0; d < D; ++d) store(o + d, acc[size_t(r * D + d)] * inv);
    }
  }
};

template <class T, class KV>
void attention(const Geometry& g, const TensorView& q, const TensorView& k, const TensorView& v,
               TensorView& out) {
  if (g.dim == 0 || g.q_len == 0) return;
  // A task: up to kRowsPerTask rows = `heads` query heads of one group x a tile of positions.
  // Groups wider than kRowsPerTask (MQA with many heads) are split into head chunks.
  const int64_t heads = std::min(g.group, kRowsPerTask);
  const int64_t head_chunks = (g.group + heads - 1) / heads;
  const int64_t positions = std::max<int64_t>(1, kRowsPerTask / heads);
  const int64_t q_tiles = (g.q_len + positions - 1) / positions;
  const int64_t total = g.batch * g.kv_heads * head_chunks * q_tiles;
  const T* qp = q.as<const T>();
  const KV* kp = k.as<const KV>();
  const KV* vp = v.as<const KV>();
  T* op = out.as<T>();
#pragma omp parallel if (total > 1)
  {
    Task<T, KV> task(g, qp, kp, vp, op);
#pragma omp for schedule(dynamic, 1)
    for (int64_t t = 0; t < total; ++t) {
      int64_t tile = t % q_tiles, rest = t / q_tiles;
      int64_t chunk = rest % head_chunks, bh = rest / head_chunks;
      int64_t head0 = chunk * heads;
      int64_t s0 = tile * positions;
      task.run(bh / g.kv_heads, bh % g.kv_heads, head0, std::min(heads, g.group - head0), s0,
               std::min(positions, g.q_len - s0));
    }
  }
}

// Element strides of a mask broadcast to [B, Hq, Sq, Skv] (right-aligned, 0 where size 1).
void mask_strides(const TensorView& mask, int64_t out[4]) {
  int64_t stride = 1;
  for (int d = 3; d >= 0; --d) out[d] = 0;
  for (int d = mask.rank() - 1; d >= 0; --d) {
    int at = d + 4 - mask.rank();
    out[at] = mask.shape[size_t(d)] == 1 ? 0 : stride;
    stride *= mask.shape[size_t(d)];
  }
}

void run_attention(KernelContext&, const ir::Node& node, std::span<const TensorView> in,
                   std::span<TensorView> out) {
  const TensorView& q = in[0];
  const TensorView& k = in[1];
  Geometry g{};
  g.batch = q.shape[0];
  g.q_heads = q.shape[1];
  g.q_len = q.shape[2];
  g.dim = q.shape[3];
  g.kv_heads = k.shape[1];
  g.kv_cap = k.shape[2];
  if (g.batch == 0 || g.q_heads == 0) return;
  g.group = g.q_heads / g.kv_heads;
  g.scale = float(
      node.attrs.get_or<double>("scale", 1.0 / std::sqrt(double(std::max<int64_t>(g.dim, 1)))));
  g.causal = node.attrs.get_or<bool>("causal", false);
  g.window = node.attrs.get_or<int64_t>("window", 0);
  size_t next = 3;
  if (node.attrs.get_or<bool>("has_mask", false)) {
    const TensorView& mask = in[next++];
    g.mask = mask.data;
    g.mask_bool = mask.dtype == DType::boolean;
    mask_strides(mask, g.mask_stride);
  }
  if (node.attrs.get_or<bool>("has_kv_len", false)) {
    const TensorView& kv_len = in[next++];
    g.kv_len = kv_len.data;
    g.kv_len_dtype = kv_len.dtype;
    g.kv_len_count = kv_len.numel();
  }
  if (node.attrs.get_or<bool>("has_k_scale", false)) {
    g.k_scale = in[next++].as<const float>();
    g.v_scale = in[next++].as<const float>();  // inference: both or neither
  }
  dispatch_float(q.dtype, [&](auto tag) {
    using T = decltype(tag);
    if (k.dtype == DType::i8)
      attention<T, int8_t>(g, q, k, in[2], out[0]);
    else
      attention<T, T>(g, q, k, in[2], out[0]);
  });
}

// Symmetric int8 per row: scale = max|x| / 127, code = round(x / scale), in f32 division
// (as the CUDA kernel does, so both give the same codes).
template <class T>
void quantize_kv_rows(const T* x, int8_t* codes, float* scales, int64_t rows, int64_t D) {
#pragma omp parallel for if (rows * D > (int64_t(1) << 16))
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * D;
    float top = 0.f;
    for (int64_t d = 0; d < D; ++d) top = std::max(top, std::abs(float(load(xr + d))));
    float scale = top / 127.f;
    scales[r] = scale;
    for (int64_t d = 0; d < D; ++d) {
      float c = scale > 0.f ? std::round(float(load(xr + d)) / scale) : 0.f;
      codes[r * D + d] = int8_t(std::clamp(c, -127.f, 127.f));
    }
  }
}

void run_quantize_kv(KernelContext&, const ir::Node&, std::span<const TensorView> in,
                     std::span<TensorView> out) {
  const TensorView& x = in[0];
  const int64_t D = x.shape[3];
  const int64_t rows = D == 0 ? out[1].numel() : x.numel() / D;
  if (D == 0) {
    std::fill_n(out[1].as<float>(), rows, 0.f);
    return;
  }
  dispatch_float(x.dtype, [&](auto tag) {
    using T = decltype(tag);
    quantize_kv_rows(x.as<const T>(), out[0].as<int8_t>(), out[1].as<float>(), rows, D);
  });
}

}  // namespace

void register_attention_kernels(Backend& b) {
  b.add_kernel("scaled_dot_product_attention",
               Kernel{"cpu.attention.flash", run_attention, nullptr});
  b.add_kernel("quantize_kv", Kernel{"cpu.quantize_kv", run_quantize_kv, nullptr});
}

}  // namespace loom::cpu
