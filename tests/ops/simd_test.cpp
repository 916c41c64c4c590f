// The CPU's vector kernels (backends/cpu/simd.h) on every level this CPU has, portable
// included: binary f32/f16/bf16 loops and the f32 lane sum against naive references
// (elementwise tolerances) and against the portable level bit for bit, on lengths with
// every tail, scalar operands and special values; and graphs run with the level capped.
#include "backends/cpu/simd.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "test_util.h"

namespace {

using namespace loom;
using namespace loom::testing;
using cpu::SimdBinary;
using cpu::SimdLevel;

// Caps the level for one scope.
struct LevelCap {
  explicit LevelCap(SimdLevel level) { cpu::set_simd_level_for_testing(level); }
  ~LevelCap() { cpu::set_simd_level_for_testing(std::nullopt); }
};

std::vector<SimdLevel> levels() {
  std::vector<SimdLevel> out{SimdLevel::portable};
  if (cpu::cpu_simd_level() >= SimdLevel::avx2) out.push_back(SimdLevel::avx2);
  if (cpu::cpu_simd_level() >= SimdLevel::avx512) out.push_back(SimdLevel::avx512);
  return out;
}

constexpr int64_t kLengths[] = {0, 1, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 47, 100, 1027};
constexpr SimdBinary kOps[] = {SimdBinary::add, SimdBinary::sub, SimdBinary::mul, SimdBinary::div};

double reference(SimdBinary op, double a, double b) {
  switch (op) {
    case SimdBinary::add:
      return a + b;
    case SimdBinary::sub:
      return a - b;
    case SimdBinary::mul:
      return a * b;
    default:
      return a / b;
  }
}

// Random values with specials spliced in: NaN, infinities, zeros of both signs, a subnormal,
// values that overflow f16, and bf16 rounding ties.
std::vector<float> values(int64_t n, int salt) {
  std::vector<float> v(static_cast<size_t>(n));
  std::uniform_real_distribution<float> dist(-4.f, 4.f);
  for (auto& x : v) x = dist(rng());
  const float specials[] = {std::numeric_limits<float>::quiet_NaN(),
                            std::numeric_limits<float>::infinity(),
                            -std::numeric_limits<float>::infinity(),
                            0.f,
                            -0.f,
                            1e-40f,
                            70000.f,
                            -1e30f,
                            1.00390625f,   // 1 + 2^-8: a bf16 tie, rounds to even
                            1.01171875f};  // 1 + 3 * 2^-8: a tie rounding up
  for (int64_t i = salt; i < n; i += 5) v[size_t(i)] = specials[size_t(i / 5 + salt) % 10];
  return v;
}

template <class T>
T from_float(float f) {
  T t;
  cpu::store(&t, f);
  return t;
}

template <class T>
uint32_t bits_of(T t) {
  if constexpr (std::is_same_v<T, float>) {
    uint32_t u;
    std::memcpy(&u, &t, 4);
    return u;
  } else {
    return t.bits;
  }
}

template <class T>
void check_binary(DType dtype) {
  for (int64_t n : kLengths)
    for (SimdBinary op : kOps)
      for (auto [sa, sb] : {std::pair<int64_t, int64_t>{1, 1}, {1, 0}, {0, 1}}) {
        std::vector<T> a, b;
        for (float f : values(n, 0)) a.push_back(from_float<T>(f));
        for (float f : values(std::max<int64_t>(n, 1), 2)) b.push_back(from_float<T>(f));
        if (a.empty()) a.push_back(from_float<T>(1.f));
        std::vector<T> portable(static_cast<size_t>(n)), got(static_cast<size_t>(n));
        {
          LevelCap cap(SimdLevel::portable);
          EXPECT_FALSE(cpu::simd_binary(op, a.data(), sa, b.data(), sb, portable.data(), n));
        }
        // The portable reference: the kernel's own scalar rule (compute in f32, store()).
        for (int64_t i = 0; i < n; ++i)
          cpu::store(&portable[size_t(i)], float(reference(op, cpu::load(&a[size_t(i * sa)]),
                                                           cpu::load(&b[size_t(i * sb)]))));
        for (SimdLevel level : levels()) {
          if (level == SimdLevel::portable) continue;
          LevelCap cap(level);
          std::string what = std::string(dtype_name(dtype)) + " " + cpu::simd_level_name(level) +
                             " op " + std::to_string(int(op)) + " n " + std::to_string(n) +
                             " strides " + std::to_string(sa) + "," + std::to_string(sb);
          ASSERT_TRUE(cpu::simd_binary(op, a.data(), sa, b.data(), sb, got.data(), n)) << what;
          const Tolerance tol = tolerance_for(dtype);
          for (int64_t i = 0; i < n; ++i) {
            const double x = cpu::load(&a[size_t(i * sa)]), y = cpu::load(&b[size_t(i * sb)]);
            const double want = reference(op, x, y);
            const double g = cpu::load(&got[size_t(i)]);
            if (std::isnan(want) || std::isnan(double(cpu::load(&portable[size_t(i)])))) {
              EXPECT_TRUE(std::isnan(g)) << what << " at " << i;
              continue;
            }
            // Bit for bit the portable result (the same IEEE operation and rounding) ...
            EXPECT_EQ(bits_of(got[size_t(i)]), bits_of(portable[size_t(i)]))
                << what << " at " << i << ": " << x << " op " << y;
            // ... and close to the double reference where that is finite in the dtype.
            if (std::isfinite(g) && std::isfinite(want)) {
              EXPECT_LE(std::abs(g - want), tol.atol + tol.rtol * std::abs(want))
                  << what << " at " << i;
            }
          }
        }
      }
}

TEST(CpuSimd, BinaryF32MatchesPortableOnEveryLevel) { check_binary<float>(DType::f32); }
TEST(CpuSimd, BinaryF16MatchesPortableOnEveryLevel) { check_binary<cpu::f16_t>(DType::f16); }
TEST(CpuSimd, BinaryBf16MatchesPortableOnEveryLevel) { check_binary<cpu::bf16_t>(DType::bf16); }

TEST(CpuSimd, SumF32IsTheSameOnEveryLevelAndCloseToDouble) {
  for (int64_t n : {0, 1, 15, 16, 17, 33, 255, 1000, 65537}) {
    std::vector<float> x(static_cast<size_t>(n));
    std::uniform_real_distribution<float> dist(-1.f, 1.f);
    for (auto& v : x) v = dist(rng());
    double want = 0;
    for (float v : x) want += double(v);
    std::optional<double> first;
    for (SimdLevel level : levels()) {
      LevelCap cap(level);
      const double got = cpu::sum_f32(x.data(), n);
      EXPECT_NEAR(got, want, 1e-12 * (1 + double(n))) << cpu::simd_level_name(level) << " n " << n;
      if (!first) first = got;
      EXPECT_EQ(got, *first) << cpu::simd_level_name(level) << " n " << n;
    }
  }
  std::vector<float> special{1.f, std::numeric_limits<float>::infinity(), 2.f};
  special.resize(40, 1.f);
  for (SimdLevel level : levels()) {
    LevelCap cap(level);
    EXPECT_TRUE(std::isinf(cpu::sum_f32(special.data(), 40)));
    special[20] = std::numeric_limits<float>::quiet_NaN();
    EXPECT_TRUE(std::isnan(cpu::sum_f32(special.data(), 40)));
    special[20] = 1.f;
  }
}

TEST(CpuSimd, ExpIsTheSameOnEveryLevelAndWithinUlpsOfExp) {
  std::vector<float> x;
  std::uniform_real_distribution<float> dist(-110.f, 95.f);
  for (int i = 0; i < 4000; ++i) x.push_back(dist(rng()));
  for (float v : {0.f,  -0.f,  1.f,    -1.f,   0.5f,   1e-8f,   -1e-8f,  88.72f,  88.7228f, 88.73f,
                  89.f, 100.f, -87.3f, -87.4f, -100.f, -103.2f, -103.3f, -103.9f, -104.f,   -120.f})
    x.push_back(v);
  x.push_back(std::numeric_limits<float>::infinity());
  x.push_back(-std::numeric_limits<float>::infinity());
  x.push_back(std::numeric_limits<float>::quiet_NaN());
  for (int64_t n : {int64_t(0), int64_t(1), int64_t(7), int64_t(17), int64_t(x.size())}) {
    std::vector<float> first;
    for (SimdLevel level : levels()) {
      LevelCap cap(level);
      std::vector<float> y(static_cast<size_t>(n));
      cpu::simd_exp(x.data(), 1, y.data(), n);
      for (int64_t i = 0; i < n; ++i) {
        const double want = std::exp(double(x[size_t(i)]));
        const float got = y[size_t(i)];
        if (std::isnan(want)) {
          EXPECT_TRUE(std::isnan(got)) << x[size_t(i)];
        } else if (want > double(std::numeric_limits<float>::max())) {
          EXPECT_EQ(got, std::numeric_limits<float>::infinity()) << x[size_t(i)];
        } else {
          // 4 ulp relative, and two of the smallest subnormal absolute.
          EXPECT_LE(std::abs(double(got) - want), 4 * 0x1p-23 * want + 0x1p-148)
              << cpu::simd_level_name(level) << " exp(" << x[size_t(i)] << ")";
        }
      }
      if (first.empty()) first = y;
      for (int64_t i = 0; i < n; ++i) {
        if (!std::isnan(y[size_t(i)])) {
          EXPECT_EQ(bits_of(y[size_t(i)]), bits_of(first[size_t(i)]))
              << cpu::simd_level_name(level) << " exp(" << x[size_t(i)] << ")";
        }
      }
    }
    // Strided input, and f16 / bf16, through the same formula.
    std::vector<float> strided(static_cast<size_t>(n / 2));
    cpu::simd_exp(x.data(), 2, strided.data(), n / 2);
    for (int64_t i = 0; i < n / 2; ++i) {
      if (!std::isnan(x[size_t(2 * i)])) {
        EXPECT_EQ(bits_of(strided[size_t(i)]), bits_of(first[size_t(2 * i)])) << i;
      }
    }
  }
  for (DType dtype : {DType::f16, DType::bf16})
    for (SimdLevel level : levels()) {
      LevelCap cap(level);
      TensorData in = random_tensor(dtype, {1027}, -8.f, 8.f);
      Graph g;
      Tensor t = g.placeholder("x", {1027}, dtype);
      auto out = run_once(g, {exp(t)}, {{"x", in}});
      std::vector<double> want;
      for (double v : to_doubles(in)) want.push_back(std::exp(v));
      expect_close(out[0], want, tolerance_for(dtype),
                   std::string(dtype_name(dtype)) + " " + cpu::simd_level_name(level));
    }
}

TEST(CpuSimd, GemvMatchesANaiveProductOnEveryLevel) {
  for (auto [k, n] : {std::pair<int64_t, int64_t>{1, 1},
                      {3, 7},
                      {4, 16},
                      {5, 17},
                      {9, 33},
                      {64, 2047},
                      {7, 2049},
                      {130, 4100}}) {
    const int64_t ldb = n + 3;  // a row stride wider than the row
    std::vector<float> x(static_cast<size_t>(k)), b(static_cast<size_t>(k * ldb));
    std::uniform_real_distribution<float> dist(-1.f, 1.f);
    for (auto& v : x) v = dist(rng());
    for (auto& v : b) v = dist(rng());
    std::vector<float> first;
    for (SimdLevel level : levels()) {
      LevelCap cap(level);
      std::vector<float> y(static_cast<size_t>(n), -7.f);
      const bool ran = cpu::simd_gemv(x.data(), b.data(), ldb, k, n, y.data());
      EXPECT_EQ(ran, level != SimdLevel::portable);
      if (!ran) continue;
      std::vector<double> want(static_cast<size_t>(n), 0.0);
      for (int64_t j = 0; j < n; ++j)
        for (int64_t i = 0; i < k; ++i)
          want[size_t(j)] += double(x[size_t(i)]) * double(b[size_t(i * ldb + j)]);
      TensorData got = TensorData::from_vector<float>(y, {n});
      expect_close(got, want, accumulation_tolerance(DType::f32, k),
                   std::string(cpu::simd_level_name(level)) + " k " + std::to_string(k) + " n " +
                       std::to_string(n));
      if (first.empty()) first = y;
      EXPECT_EQ(y, first) << cpu::simd_level_name(level);  // AVX2 and AVX-512 agree bit for bit
    }
  }
  // Through a graph: [1, K] x [K, N], and transposed B (sgemv), against the portable BLAS.
  Graph g;
  Tensor a = g.placeholder("a", {1, 300});
  Tensor w = g.placeholder("w", {300, 2050});
  Tensor wt = g.placeholder("wt", {2050, 300});
  Feeds feeds{{"a", random_tensor(DType::f32, {1, 300})},
              {"w", random_tensor(DType::f32, {300, 2050})},
              {"wt", random_tensor(DType::f32, {2050, 300})}};
  std::vector<Tensor> outs;
  for (Tensor t : {matmul(a, w), matmul(a, wt, false, true)}) outs.push_back(t);
  auto fast = run_once(g, outs, feeds);
  std::vector<TensorData> slow;
  {
    LevelCap cap(SimdLevel::portable);
    slow = run_once(g, outs, feeds);
  }
  for (size_t o = 0; o < 2; ++o)
    expect_close(fast[o], to_doubles(slow[o]), accumulation_tolerance(DType::f32, 300));
}

// Whole graphs (the kernels' callers: broadcasting loop, threaded chunks, reductions) give
// the same results with the vector levels capped to portable.
TEST(CpuSimd, GraphsMatchWithTheLevelCapped) {
  for (DType dtype : {DType::f32, DType::f16, DType::bf16})
    for (int64_t n : {1, 17, 8195, 70001}) {
      Graph g;
      Tensor a = g.placeholder("a", {n}, dtype);
      Tensor b = g.placeholder("b", {n}, dtype);
      Tensor s = g.placeholder("s", {1}, dtype);
      std::vector<Tensor> outs;
      for (Tensor t : {a + b, a * s, s - b, a / b, exp(a)}) outs.push_back(t);
      if (dtype == DType::f32) {
        outs.push_back(sum(a));
        outs.push_back(mean(reshape(a, {1, n}), std::vector<int64_t>{1}));
      }
      Feeds feeds{{"a", random_tensor(dtype, {n})},
                  {"b", random_tensor(dtype, {n}, 0.5f, 2.f)},
                  {"s", random_tensor(dtype, {1})}};
      std::vector<TensorData> fast = run_once(g, outs, feeds);
      std::vector<TensorData> slow;
      {
        LevelCap cap(SimdLevel::portable);
        slow = run_once(g, outs, feeds);
      }
      ASSERT_EQ(fast.size(), slow.size());
      for (size_t k = 0; k < fast.size(); ++k)
        EXPECT_EQ(fast[k].to_floats(), slow[k].to_floats())
            << dtype_name(dtype) << " n " << n << " output " << k;
      // And the sums against a double reference.
      if (dtype == DType::f32) {
        double want = 0;
        for (float v : feeds.at("a").to_vector<float>()) want += double(v);
        expect_close(fast[5], {want}, accumulation_tolerance(dtype, n));
        expect_close(fast[6], {want / double(n)}, accumulation_tolerance(dtype, n));
      }
    }
}

}  // namespace
