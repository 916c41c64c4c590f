// Shared helpers for tests: random inputs, one-shot runs, and elementwise comparison against
// a reference computed in double precision.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "loom/loom.h"

namespace loom::testing {

// Fresh random generator per test; seeded from the test's name so failures reproduce.
inline std::mt19937& rng() {
  static std::mt19937 gen;
  static const void* seeded_for = nullptr;
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  if (info != seeded_for) {  // a new test: reseed (the name is hashed once per test)
    seeded_for = info;
    std::string name = info ? std::string(info->test_suite_name()) + "." + info->name() : "";
    gen.seed(uint32_t(std::hash<std::string>{}(name)));
  }
  return gen;
}

// Uniform floats in [lo, hi) converted to `dtype` (integers are rounded).
inline TensorData random_tensor(DType dtype, Extents shape, float lo = -1.f, float hi = 1.f) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> values(size_t(numel(shape)));
  for (auto& v : values) v = dist(rng());
  if (is_integer(dtype) || dtype == DType::boolean)
    for (auto& v : values) v = std::round(v);
  return TensorData::from_floats(values, dtype, std::move(shape));
}

// Values as doubles, read through the dtype (so references see the rounded inputs).
inline std::vector<double> to_doubles(const TensorData& t) {
  auto f = t.to_floats();
  return std::vector<double>(f.begin(), f.end());
}

// Elementwise tolerance, as torch.testing.assert_close: |got - want| <= atol + rtol * |want|.
// The kind of loom::Error that `fn` throws (its message into `message`); a test failure when
// it throws none.
inline ErrorKind error_kind(const std::function<void()>& fn, std::string* message = nullptr) {
  try {
    fn();
  } catch (const Error& e) {
    if (message) *message = e.what();
    return e.kind();
  }
  ADD_FAILURE() << "expected loom::Error";
  return ErrorKind::internal;
}

struct Tolerance {
  double rtol = 0;
  double atol = 0;
};

inline std::ostream& operator<<(std::ostream& os, const Tolerance& t) {
  return os << "rtol " << t.rtol << " atol " << t.atol;
}

// Machine epsilon (spacing of values in [1, 2)) of a float dtype.
inline double epsilon_of(DType dtype) {
  switch (dtype) {
    case DType::f16:
      return 0x1p-10;
    case DType::bf16:
      return 0x1p-7;
    default:
      return 0x1p-23;
  }
}

// torch.testing's defaults per dtype: a result rounded once to the dtype is within half an
// epsilon (f16 1e-3 ~ 1 ulp, bf16 1.6e-2 ~ 2 ulp, f32 1.3e-6 ~ 11 ulp for the few ulp of
// f32 math functions). Integers and bool must match exactly.
inline Tolerance tolerance_for(DType dtype) {
  switch (dtype) {
    case DType::f32:
      return {1.3e-6, 1e-5};
    case DType::f16:
      return {1e-3, 1e-5};
    case DType::bf16:
      return {1.6e-2, 1e-5};
    default:
      return {0, 0};
  }
}

// A result that sums `terms` products in f32 and is then rounded to `dtype`. Each addition
// rounds by up to eps_f32/2 of the partial sum. Terms of random sign (typical magnitude
// `term`) keep partial sums near sqrt(k) * term and their errors add as a random walk: about
// terms * eps * term / 2 in all, which cancellation can make large against a small result,
// so it goes into atol. Terms of one sign make partial sums grow with the result: about
// sqrt(terms) * eps / 3 relative, in rtol. Both are allowed four times over; the dtype's own
// rounding of the result stays in rtol.
inline Tolerance accumulation_tolerance(DType dtype, int64_t terms, double term = 1.0) {
  Tolerance t = tolerance_for(dtype);
  const double k = double(std::max<int64_t>(terms, 1)), eps = epsilon_of(DType::f32);
  t.rtol += 4 * std::sqrt(k) * eps / 3;
  t.atol += 4 * k * eps * term / 2;
  return t;
}

// A result normalized by a sum of `terms` f32 values (softmax, log_softmax, layer_norm,
// rms_norm): every element carries the sum's relative rounding error, about
// sqrt(terms) * eps / 3 for a random walk (in rtol), and where that sum's logarithm or a mean
// is subtracted (log_softmax, layer_norm) the same error appears as an absolute one near zero
// (in atol). Allowed four times over, on top of the dtype's own rounding.
inline Tolerance normalized_tolerance(DType dtype, int64_t terms) {
  Tolerance t = tolerance_for(dtype);
  const double growth = 4 * std::sqrt(double(std::max<int64_t>(terms, 1))) * epsilon_of(DType::f32);
  t.rtol += growth / 3;
  t.atol += growth;
  return t;
}

// Elementwise check: every element within `tol` of the reference; NaN matches only NaN and an
// infinity only the same infinity. Reports how many elements fail and the worst of them.
inline void expect_close(const TensorData& got, const std::vector<double>& want, Tolerance tol,
                         const std::string& what = "") {
  std::vector<float> g = got.to_floats();
  ASSERT_EQ(g.size(), want.size()) << what;
  size_t failures = 0, worst = 0;
  double worst_ratio = -1;  // |got - want| / allowed; infinite for NaN and inf mismatches
  for (size_t i = 0; i < g.size(); ++i) {
    double a = g[i], b = want[i];
    double ratio;
    if (std::isnan(a) || std::isnan(b)) {
      ratio = std::isnan(a) && std::isnan(b) ? 0 : INFINITY;
    } else if (std::isinf(a) || std::isinf(b)) {
      ratio = a == b ? 0 : INFINITY;
    } else {
      double allowed = tol.atol + tol.rtol * std::abs(b);
      double diff = std::abs(a - b);
      ratio = diff == 0 ? 0 : allowed > 0 ? diff / allowed : INFINITY;
    }
    if (ratio > 1) ++failures;
    if (ratio > worst_ratio) worst_ratio = ratio, worst = i;
  }
  EXPECT_EQ(failures, 0u) << what << ": " << failures << " of " << g.size() << " elements outside "
                          << tol << "; worst at flat index " << worst << ": got " << g[worst]
                          << ", want " << want[worst] << " (|diff| "
                          << std::abs(double(g[worst]) - want[worst]) << ")";
}

// Runs a graph once on `device` and returns its outputs on the host.
inline std::vector<TensorData> run_once(const Graph& g, std::vector<Tensor> outputs,
                                        const Feeds& feeds = {}, Device device = Device::cpu()) {
  CompileOptions options;
  options.device = device;
  options.outputs = std::move(outputs);
  Executable exe = compile(g, options);
  auto results = exe.run(feeds);
  for (auto& r : results) r = r.to_host();
  return results;
}

// Index helpers for naive references over contiguous row-major data.
inline std::vector<int64_t> unravel(int64_t flat, const Extents& shape) {
  std::vector<int64_t> idx(shape.size());
  for (int d = int(shape.size()) - 1; d >= 0; --d) {
    idx[size_t(d)] = shape[size_t(d)] ? flat % shape[size_t(d)] : 0;
    flat = shape[size_t(d)] ? flat / shape[size_t(d)] : 0;
  }
  return idx;
}

// Flat index into `shape` of a (right-aligned) index of a broadcast result.
inline int64_t broadcast_index(const std::vector<int64_t>& out_idx, const Extents& shape) {
  int64_t flat = 0;
  size_t offset = out_idx.size() - shape.size();
  for (size_t d = 0; d < shape.size(); ++d) {
    int64_t i = shape[d] == 1 ? 0 : out_idx[d + offset];
    flat = flat * shape[d] + i;
  }
  return flat;
}

}  // namespace loom::testing
