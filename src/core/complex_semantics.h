// complex64 arithmetic shared by the host (CPU kernels) and the device (CUDA kernels), so that
// both backends give the same bits. Values are stored as NumPy's complex64: two f32, real
// first. Products and sums are computed in f32, as NumPy does for complex64; division uses
// Smith's algorithm (NumPy's and C99 Annex G's approach) so that |b| near the f32 range does
// not overflow or underflow in |b|^2.
#pragma once

#include <cmath>

#include "core/scalar_semantics.h"

namespace loom::scalar {

struct alignas(8) complex64 {
  float re, im;
};

LOOM_HOST_DEVICE inline complex64 add(complex64 a, complex64 b) {
  return {a.re + b.re, a.im + b.im};
}
LOOM_HOST_DEVICE inline complex64 sub(complex64 a, complex64 b) {
  return {a.re - b.re, a.im - b.im};
}
LOOM_HOST_DEVICE inline complex64 mul(complex64 a, complex64 b) {
  return {a.re * b.re - a.im * b.im, a.re * b.im + a.im * b.re};
}
LOOM_HOST_DEVICE inline complex64 div(complex64 a, complex64 b) {
  // Smith (1962): scale by the larger of |b.re|, |b.im|. Division by 0 gives inf/NaN as
  // NumPy does.
  const float abs_re = fabsf(b.re), abs_im = fabsf(b.im);
  if (abs_re >= abs_im) {
    if (abs_re == 0.f && abs_im == 0.f) return {a.re / abs_re, a.im / abs_im};
    const float r = b.im / b.re, d = b.re + b.im * r;
    return {(a.re + a.im * r) / d, (a.im - a.re * r) / d};
  }
  const float r = b.re / b.im, d = b.re * r + b.im;
  return {(a.re * r + a.im) / d, (a.im * r - a.re) / d};
}
LOOM_HOST_DEVICE inline complex64 conj(complex64 a) { return {a.re, -a.im}; }
// hypotf avoids the overflow of sqrt(re^2 + im^2) near the f32 range.
LOOM_HOST_DEVICE inline float complex_abs(complex64 a) { return hypotf(a.re, a.im); }
// re^2 + im^2 rounded after each product and the sum (no fused multiply-add, so that
// both backends give the same bits).
LOOM_HOST_DEVICE inline float complex_abs2(complex64 a) {
#if defined(__CUDA_ARCH__)
  return __fadd_rn(__fmul_rn(a.re, a.re), __fmul_rn(a.im, a.im));
#else
  return a.re * a.re + a.im * a.im;
#endif
}
LOOM_HOST_DEVICE inline float angle(complex64 a) { return atan2f(a.im, a.re); }

}  // namespace loom::scalar
