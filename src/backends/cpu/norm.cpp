// CPU softmax, log_softmax, layer_norm and rms_norm: a few passes over each row, rows in
// parallel; f16 and bf16 are computed in f32.
#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <span>

#include "backends/cpu/cpu_kernels.h"
#include "backends/cpu/dispatch.h"
#include "backends/cpu/exp_f32.h"
#include "backends/cpu/simd.h"
#include "ops/norm_params.h"

namespace loom::cpu {
namespace {

// Splits x around `axis` into [outer, n, inner]: row o, i has n elements `inner` apart.
struct RowLayout {
  int64_t outer = 1, n = 1, inner = 1;
};

RowLayout rows_around(const TensorView& x, int axis) {
  RowLayout l;
  for (int d = 0; d < axis; ++d) l.outer *= x.shape[size_t(d)];
  l.n = x.shape[size_t(axis)];
  for (int d = axis + 1; d < x.rank(); ++d) l.inner *= x.shape[size_t(d)];
  return l;
}

int64_t row_grain(int64_t n) {
  return std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(n, 1));
}

// exp(x) for x <= 0 (softmax subtracts the row max first), within about 2 ulp. libm's expf
// is a scalar call; this is branch-free arithmetic, so loops over it vectorize. Cephes'
// method: x = n ln2 + r with |r| <= ln2 / 2, exp(r) by a degree-6 polynomial, 2^n written
// into the exponent bits. Results below FLT_MIN (x < -87.3) are 0; a NaN stays NaN.
inline float exp_nonpositive(float x) {
  constexpr float kLowest = -87.3365447504f;  // ln(FLT_MIN)
  constexpr float kShifter = 12582912.f;      // 1.5 * 2^23: x + it rounds x to an integer
  const float t = x * 1.44269504088896341f + kShifter;
  const float n = t - kShifter;
  const uint32_t exponent = std::bit_cast<uint32_t>(t) - std::bit_cast<uint32_t>(kShifter);
  const float p = exp_reduced(x, n);
  const float y = p * std::bit_cast<float>((exponent + 127u) << 23);
  // Below kLowest the exponent wraps and y is garbage: mask it to +0.
  const uint32_t keep = uint32_t(x < kLowest) - 1u;
  return std::bit_cast<float>(std::bit_cast<uint32_t>(y) & keep);
}

template <class T, bool is_log>
void softmax_row(const T* x, T* y, int64_t n, int64_t stride) {
  // Whether or not a NaN becomes the max, it makes the sum and so the whole row NaN.
  float mx = -std::numeric_limits<float>::infinity();
#pragma omp simd reduction(max : mx)
  for (int64_t i = 0; i < n; ++i) {
    const float v = load(x + i * stride);
    mx = mx > v ? mx : v;  // this form of max is the one GCC vectorizes
  }
  // The sum is kept in double: long rows summed in float drift by ~1e-5.
  double sum = 0.0;
  if constexpr (std::is_same_v<T, float> && !is_log) {
    if (stride == 1) {  // keep the exponentials and rescale them: one exp per element
      // x - max, then simd_exp in place: AVX2 / AVX-512 where the CPU has them. For inputs
      // <= 0 exp_f32 gives exp_nonpositive's bits, except below ln(FLT_MIN), where it gives
      // the subnormal instead of 0.
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) y[i] = x[i] - mx;
      simd_exp(y, 1, y, n);
#pragma omp simd reduction(+ : sum)
      for (int64_t i = 0; i < n; ++i) sum += y[i];
      const float inv = float(1.0 / sum);
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) y[i] *= inv;
      return;
    }
  }
#pragma omp simd reduction(+ : sum)
  for (int64_t i = 0; i < n; ++i) sum += exp_nonpositive(float(load(x + i * stride)) - mx);
  if constexpr (is_log) {
    const float log_sum = float(std::log(sum));
    for (int64_t i = 0; i < n; ++i)
      store(y + i * stride, float(load(x + i * stride)) - mx - log_sum);
  } else {
    const float inv = float(1.0 / sum);
    for (int64_t i = 0; i < n; ++i)
      store(y + i * stride, exp_nonpositive(float(load(x + i * stride)) - mx) * inv);
  }
}

template <bool is_log>
void run_softmax(KernelContext&, const ir::Node& node, std::span<const TensorView> in,
                 std::span<TensorView> out) {
  const TensorView& x = in[0];
  if (x.numel() == 0) return;
  const int axis =
      normalize_axis(ops::SoftmaxParams::decode(node).axis, x.rank(), node.op_name().c_str());
  const RowLayout l = rows_around(x, axis);
  dispatch_float(x.dtype, [&](auto tag) {
    using T = decltype(tag);
    const T* xp = x.as<const T>();
    T* yp = out[0].as<T>();
    parallel_for(l.outer * l.inner, row_grain(l.n), [&](int64_t row) {
      const int64_t o = row / l.inner, i = row % l.inner;
      const int64_t start = o * l.n * l.inner + i;
      softmax_row<T, is_log>(xp + start, yp + start, l.n, l.inner);
    });
  });
}

// The statistics of layer_norm and rms_norm accumulate in double, as every float reduction
// does (DESIGN.md): with a row mean far from zero (1e4, say) an f32 sum loses the mean's low
// bits and the output carries that error. The mean is then split into two floats
// (center.hi + center.lo) so that the per-element work stays in f32: x - hi is exact for
// x near the mean, and subtracting lo recovers the rest.
struct Center {
  float hi = 0.f, lo = 0.f;
};

template <class T>
double row_sum(const T* x, int64_t n) {
  double s = 0.0;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += double(float(load(x + i)));
  return s;
}

// Squares of the deviations are summed in double; each square is formed in f32, since
// rounding a positive term cannot cancel.
template <class T>
double row_sum_squares(const T* x, int64_t n, Center c) {
  double s = 0.0;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) {
    const float d = (float(load(x + i)) - c.hi) - c.lo;
    s += double(d * d);
  }
  return s;
}

// y = (x - center) * scale * weight + bias, weight and bias optional.
template <class T>
void write_normalized(const T* x, T* y, int64_t n, Center c, float scale, const T* weight,
                      const T* bias) {
  for (int64_t i = 0; i < n; ++i) {
    float v = ((float(load(x + i)) - c.hi) - c.lo) * scale;
    if (weight) v *= float(load(weight + i));
    if (bias) v += float(load(bias + i));
    store(y + i, v);
  }
}

// One row of layer_norm (is_rms false) or rms_norm; weight and bias may be null.
template <bool is_rms, class T>
void normalize_row(const T* xr, T* yr, int64_t d, float eps, const T* weight, const T* bias) {
  Center center;
  if constexpr (!is_rms) {
    const double mean = row_sum(xr, d) / double(d);
    center.hi = float(mean);
    center.lo = float(mean - double(center.hi));
  }
  const double variance = row_sum_squares(xr, d, center) / double(d);
  const float scale = float(1.0 / std::sqrt(variance + double(eps)));
  write_normalized(xr, yr, d, center, scale, weight, bias);
}

// Rows are the last axis; the feature parameters follow x in the inputs.
template <bool is_rms>
void run_norm(KernelContext&, const ir::Node& node, std::span<const TensorView> in,
              std::span<TensorView> out) {
  const TensorView& x = in[0];
  if (x.numel() == 0) return;
  const int64_t d = x.shape.back();
  const int64_t rows = x.numel() / d;
  const ops::NormParams params = ops::NormParams::decode(node);
  const float eps = float(params.eps);
  const bool has_weight = params.has_weight, has_bias = params.has_bias;
  dispatch_float(x.dtype, [&](auto tag) {
    using T = decltype(tag);
    const T* xp = x.as<const T>();
    T* yp = out[0].as<T>();
    const T* weight = has_weight ? in[1].as<const T>() : nullptr;
    const T* bias = has_bias ? in[has_weight ? 2 : 1].as<const T>() : nullptr;
    parallel_for(rows, row_grain(d), [&](int64_t r) {
      normalize_row<is_rms>(xp + r * d, yp + r * d, d, eps, weight, bias);
    });
  });
}

}  // namespace

void rms_norm_rows(DType dtype, const void* x, const void* weight, void* y, int64_t rows, int64_t d,
                   float eps) {
  dispatch_float(dtype, [&](auto tag) {
    using T = decltype(tag);
    parallel_for(rows, row_grain(d), [&](int64_t r) {
      normalize_row<true>(static_cast<const T*>(x) + r * d, static_cast<T*>(y) + r * d, d, eps,
                          static_cast<const T*>(weight), static_cast<const T*>(nullptr));
    });
  });
}

void register_norm_kernels(Backend& b) {
  b.add_kernel("softmax", Kernel{"cpu.softmax", run_softmax<false>, nullptr});
  b.add_kernel("log_softmax", Kernel{"cpu.log_softmax", run_softmax<true>, nullptr});
  b.add_kernel("layer_norm", Kernel{"cpu.layer_norm", run_norm<false>, nullptr});
  b.add_kernel("rms_norm", Kernel{"cpu.rms_norm", run_norm<true>, nullptr});
}

}  // namespace loom::cpu
