// The scalar rules every backend follows, in one header compiled both for the host (CPU
// kernels, constant folding, TensorData) and for the device (CUDA kernels), so that the two
// backends cannot drift apart:
//  - convert: to bool is "!= 0" (NaN is true); float to integer truncates toward zero,
//    saturates at the integer's range and maps NaN to 0; integer narrowing wraps (two's
//    complement); float to float rounds to nearest. Storing into f16/bf16 then rounds the
//    f32 value to nearest even (loom/half.h on the host, the _rn intrinsics on the device).
//  - integer arithmetic wraps; division truncates toward zero, x / 0 is 0 and min / -1
//    wraps; pow by squaring, a negative exponent giving the truncated 1 / base^-exponent.
//  - maximum / minimum propagate a NaN operand.
//  - gelu (erf and tanh forms) and rope's angles.
// C++ leaves overflowing, NaN and out-of-range conversions undefined; user data must never
// reach undefined behaviour, on either backend.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>

#if defined(__CUDACC__)
#define LOOM_HOST_DEVICE __host__ __device__
#else
#define LOOM_HOST_DEVICE
#endif

namespace loom::scalar {

// NaN test that needs no <cmath> overload on the device (x != x only for NaN).
template <class C>
LOOM_HOST_DEVICE constexpr bool is_nan(C x) {
  if constexpr (std::is_floating_point_v<C>)
    return x != x;
  else
    return false;
}

// 2^bits as a double (exact for every integer width).
LOOM_HOST_DEVICE constexpr double power_of_two(int bits) {
  double p = 1.0;
  for (int i = 0; i < bits; ++i) p *= 2.0;
  return p;
}

template <class To, class From>
LOOM_HOST_DEVICE To convert(From v) {
  if constexpr (std::is_same_v<To, bool>) {
    return v != From(0);
  } else if constexpr (std::is_integral_v<To> && std::is_floating_point_v<From>) {
    if (is_nan(v)) return To(0);
    const double t = ::trunc(double(v));
    // 2^digits is the first value past To's maximum and is exact in double.
    constexpr double past_max = power_of_two(std::numeric_limits<To>::digits);
    if (t >= past_max) return std::numeric_limits<To>::max();
    if (t < double(std::numeric_limits<To>::min())) return std::numeric_limits<To>::min();
    return To(t);
  } else {
    return To(v);  // integer narrowing is modular (C++20); floats round to nearest
  }
}

// Integer arithmetic through unsigned types: wraps instead of overflowing.
template <class C>
LOOM_HOST_DEVICE constexpr C wrapping_add(C a, C b) {
  using U = std::make_unsigned_t<C>;
  return C(U(U(a) + U(b)));
}
template <class C>
LOOM_HOST_DEVICE constexpr C wrapping_sub(C a, C b) {
  using U = std::make_unsigned_t<C>;
  return C(U(U(a) - U(b)));
}
template <class C>
LOOM_HOST_DEVICE constexpr C wrapping_mul(C a, C b) {
  using U = std::make_unsigned_t<C>;
  return C(U(U(a) * U(b)));
}
template <class C>
LOOM_HOST_DEVICE constexpr C wrapping_neg(C x) {
  using U = std::make_unsigned_t<C>;
  return C(U(U(0) - U(x)));
}

// Truncates toward zero. Division by zero is 0 and min / -1 is a wrapping negation: both
// would trap on x86 (and are undefined in C++).
template <class C>
LOOM_HOST_DEVICE constexpr C integer_div(C a, C b) {
  if (b == 0) return C(0);
  if constexpr (std::is_signed_v<C>) {
    if (b == C(-1)) return wrapping_neg(a);
  }
  return C(a / b);
}

// Exponentiation by squaring, wrapping. A negative exponent gives the truncated value of
// 1 / base^-exponent: 0 except for bases 1 and -1 (and 0 for base 0, as x / 0 is).
template <class C>
LOOM_HOST_DEVICE constexpr C integer_pow(C base, C exponent) {
  if constexpr (std::is_signed_v<C>) {
    if (exponent < 0) {
      if (base == C(1)) return C(1);
      if (base == C(-1)) return (exponent & 1) ? C(-1) : C(1);
      return C(0);
    }
  }
  C result = 1;
  for (C e = exponent; e != 0; e /= 2) {
    if (e & 1) result = wrapping_mul(result, base);
    base = wrapping_mul(base, base);
  }
  return result;
}

// The binary arithmetic ops over a compute type (an integer, or float for every float dtype).
template <class C>
LOOM_HOST_DEVICE C add(C a, C b) {
  if constexpr (std::is_integral_v<C>)
    return wrapping_add(a, b);
  else
    return a + b;
}
template <class C>
LOOM_HOST_DEVICE C sub(C a, C b) {
  if constexpr (std::is_integral_v<C>)
    return wrapping_sub(a, b);
  else
    return a - b;
}
template <class C>
LOOM_HOST_DEVICE C mul(C a, C b) {
  if constexpr (std::is_integral_v<C>)
    return wrapping_mul(a, b);
  else
    return a * b;
}
template <class C>
LOOM_HOST_DEVICE C div(C a, C b) {
  if constexpr (std::is_integral_v<C>)
    return integer_div(a, b);
  else
    return a / b;
}
template <class C>
LOOM_HOST_DEVICE C pow(C a, C b) {
  if constexpr (std::is_integral_v<C>)
    return integer_pow(a, b);
  else if constexpr (std::is_same_v<C, float>)
    return ::powf(a, b);
  else
    return ::pow(a, b);
}

// maximum and minimum propagate NaN (either operand), as NumPy and PyTorch do.
template <class C>
LOOM_HOST_DEVICE C maximum(C a, C b) {
  if (is_nan(a)) return a;
  return a > b ? a : b;  // a NaN b makes the comparison false: b
}
template <class C>
LOOM_HOST_DEVICE C minimum(C a, C b) {
  if (is_nan(a)) return a;
  return a < b ? a : b;
}

template <class C>
LOOM_HOST_DEVICE C negate(C x) {
  if constexpr (std::is_integral_v<C>)
    return wrapping_neg(x);
  else
    return -x;
}
template <class C>
LOOM_HOST_DEVICE C absolute(C x) {
  if constexpr (std::is_same_v<C, float>)
    return ::fabsf(x);
  else if constexpr (std::is_floating_point_v<C>)
    return ::fabs(x);
  else if constexpr (std::is_signed_v<C>)
    return x < 0 ? wrapping_neg(x) : x;
  else
    return x;
}
// relu keeps NaN (x < 0 is false for it), as PyTorch does.
template <class C>
LOOM_HOST_DEVICE C relu(C x) {
  if constexpr (std::is_unsigned_v<C>)
    return x;
  else
    return x < C(0) ? C(0) : x;
}

// gelu's constants, as float literals: 1/sqrt(2), sqrt(2/pi) and the tanh form's cubic term.
inline constexpr float kGeluInvSqrt2 = 0.70710678118654752f;
inline constexpr float kGeluSqrt2OverPi = 0.79788456080286536f;
inline constexpr float kGeluCubic = 0.044715f;

LOOM_HOST_DEVICE inline float gelu(float x) {
  return 0.5f * x * (1.0f + ::erff(x * kGeluInvSqrt2));
}
LOOM_HOST_DEVICE inline float gelu_tanh(float x) {
  return 0.5f * x * (1.0f + ::tanhf(kGeluSqrt2OverPi * (x + kGeluCubic * x * x * x)));
}

// rope: position p = (offset + s) * scale, summed in double so that no offset (a run-time
// integer) can overflow; pair i of `dims` rotates by p * base^(-2i / dims).
LOOM_HOST_DEVICE inline double rope_position(int64_t offset, int64_t s, double scale) {
  return (double(offset) + double(s)) * scale;
}
LOOM_HOST_DEVICE inline double rope_angle(double position, int64_t pair, int64_t dims,
                                          double log_base) {
  return position * ::exp(-double(2 * pair) / double(dims) * log_base);
}

}  // namespace loom::scalar
