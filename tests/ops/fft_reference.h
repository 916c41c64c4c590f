// Naive discrete Fourier transforms in double precision: the independent reference of the FFT
// tests (O(n^2) per line, straight from the definition), and complex test data helpers.
#pragma once

#include <cmath>
#include <complex>
#include <vector>

#include "test_util.h"

namespace loom::testing {

using cdouble = std::complex<double>;

// The one-axis DFT of every line of `axis` of x [shape], in place; sign -1 forward, +1
// inverse (unscaled).
inline void naive_dft_axis(std::vector<cdouble>& x, const Extents& shape, int axis, int sign) {
  const int64_t n = shape[size_t(axis)];
  int64_t inner = 1;
  for (size_t d = size_t(axis) + 1; d < shape.size(); ++d) inner *= shape[d];
  const int64_t outer = n == 0 ? 0 : int64_t(x.size()) / (n * inner);
  std::vector<cdouble> line(static_cast<size_t>(n));
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      cdouble* base = x.data() + o * n * inner + i;
      for (int64_t k = 0; k < n; ++k) {
        cdouble sum = 0;
        for (int64_t j = 0; j < n; ++j) {
          // (j * k) mod n keeps the angle small, so the reference stays exact to double.
          const double angle = sign * 2.0 * M_PI * double((j * k) % n) / double(n);
          sum += base[j * inner] * cdouble(std::cos(angle), std::sin(angle));
        }
        line[size_t(k)] = sum;
      }
      for (int64_t k = 0; k < n; ++k) base[k * inner] = line[size_t(k)];
    }
}

inline std::vector<cdouble> complex_values(const TensorData& t) {
  std::vector<float> f = t.to_floats();
  std::vector<cdouble> out;
  if (t.dtype() == DType::c64) {
    for (size_t i = 0; i + 1 < f.size(); i += 2) out.emplace_back(f[i], f[i + 1]);
  } else {
    for (float v : f) out.emplace_back(v, 0.0);
  }
  return out;
}

// Interleaved (re, im) doubles, as to_floats() gives c64 data, for expect_close.
inline std::vector<double> interleaved(const std::vector<cdouble>& x) {
  std::vector<double> out;
  for (const cdouble& v : x) out.push_back(v.real()), out.push_back(v.imag());
  return out;
}

inline TensorData random_complex(Extents shape, float lo = -1.f, float hi = 1.f) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<std::complex<float>> values(size_t(numel(shape)));
  for (auto& v : values) v = {dist(rng()), dist(rng())};
  return TensorData::from_vector(values, std::move(shape));
}

}  // namespace loom::testing
