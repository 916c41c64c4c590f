// Shared helpers for tests: random inputs, one-shot runs, and comparison against a
// reference computed in double precision.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
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

// Tolerance on ‖got − want‖ / ‖want‖ that fits the dtype's rounding.
inline double tolerance_for(DType dtype) {
  switch (dtype) {
    case DType::f16:
      return 2e-3;
    case DType::bf16:
      return 1.6e-2;
    default:
      return 1e-5;
  }
}

// Relative L2 error check plus an elementwise sanity bound; NaN never passes.
inline void expect_close(const TensorData& got, const std::vector<double>& want, double rel_tol,
                         const std::string& what = "") {
  std::vector<float> g = got.to_floats();
  ASSERT_EQ(g.size(), want.size()) << what;
  double num = 0, den = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    ASSERT_FALSE(std::isnan(g[i]) && !std::isnan(want[i])) << what << " NaN at " << i;
    if (std::isinf(want[i])) {
      ASSERT_EQ(double(g[i]), want[i]) << what << " at " << i;
      continue;
    }
    num += (g[i] - want[i]) * (g[i] - want[i]);
    den += want[i] * want[i];
  }
  double rel = den > 0 ? std::sqrt(num / den) : std::sqrt(num);
  EXPECT_LE(rel, rel_tol) << what << " relative error " << rel;
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
