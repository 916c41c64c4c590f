// exp over f32 as one branch-free formula, shared by the unfused exp kernel (simd.cpp, where
// it is vectorised per instruction-set level) and the fused kernel (fused.cpp), so that both
// give the same bits. Compiled without FMA contraction everywhere it is used (the build's
// x86-64-v2 has no FMA; simd.cpp is built with -ffp-contract=off).
#pragma once

#include <bit>
#include <cstdint>

namespace loom::cpu {

// a where m, else b, as integer bit operations: GCC vectorises these (float selects it
// leaves scalar under -ftrapping-math on SSE4.2).
inline float select(bool m, float a, float b) {
  const uint32_t mask = 0u - uint32_t(m);
  return std::bit_cast<float>((std::bit_cast<uint32_t>(a) & mask) |
                              (std::bit_cast<uint32_t>(b) & ~mask));
}

// exp(x - n ln2) for an integer n with |x - n ln2| <= ln2 / 2: ln2 split in two parts so r is
// exact, then Cephes' degree-6 polynomial. Shared by exp_f32 and softmax's exp_nonpositive
// (norm.cpp), so both round the same way.
inline float exp_reduced(float x, float n) {
  const float r = (x - n * 0.693359375f) - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  return p * (r * r) + r + 1.f;
}

// exp(x) within about 2 ulp over the whole f32 range: Cephes' method as in softmax
// (norm.cpp exp_nonpositive): x = n ln2 + r with |r| <= ln2 / 2, exp(r) by a degree-6
// polynomial, then 2^n applied as 2^(n/2) * 2^(n - n/2) so that subnormal results and
// n = 128 are exact scalings. x is clamped to [-104, 89] first (exp gives 0 and inf there);
// a NaN comes back quiet.
inline float exp_f32(float x) {
  constexpr float kShifter = 12582912.f;  // 1.5 * 2^23: t - kShifter rounds to an integer
  float c = select(x < -104.f, -104.f, x);
  c = select(c > 89.f, 89.f, c);
  const float t = c * 1.44269504088896341f + kShifter;
  const float n = t - kShifter;
  const int32_t e = int32_t(std::bit_cast<uint32_t>(t) - std::bit_cast<uint32_t>(kShifter));
  const float p = exp_reduced(c, n);
  const int32_t e1 = e >> 1, e2 = e - e1;
  const float y = p * std::bit_cast<float>(uint32_t(e1 + 127) << 23) *
                  std::bit_cast<float>(uint32_t(e2 + 127) << 23);
  return select(x != x, x + x, y);
}

}  // namespace loom::cpu
