// Value conversion between compute types with defined results for every input:
// to bool is "!= 0" (NaN is true); float to integer truncates toward zero, saturates at the
// integer's range and maps NaN to 0 (C++ leaves those undefined, and user data must not
// reach undefined behaviour); integer to narrower integer wraps (two's complement).
#pragma once

#include <cmath>
#include <limits>
#include <type_traits>

namespace loom::cpu {

template <class To, class From>
To convert(From v) {
  if constexpr (std::is_same_v<To, bool>) {
    return v != From(0);
  } else if constexpr (std::is_integral_v<To> && std::is_floating_point_v<From>) {
    if (std::isnan(v)) return To(0);
    const double t = std::trunc(double(v));
    // 2^digits is the first value past To's maximum and is exact in double.
    const double past_max = std::ldexp(1.0, std::numeric_limits<To>::digits);
    if (t >= past_max) return std::numeric_limits<To>::max();
    if (t < double(std::numeric_limits<To>::min())) return std::numeric_limits<To>::min();
    return To(t);
  } else {
    return To(v);
  }
}

}  // namespace loom::cpu
