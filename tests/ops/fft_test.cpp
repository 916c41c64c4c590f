// fft, ifft, rfft and irfft on the CPU against a naive double-precision DFT (fft_reference.h),
// over primes, products of small primes and powers of two, odd axes, batches and one to three
// axes in every norm; and the identities: inverse round trip, Parseval, a delta's flat
// spectrum.
#include <algorithm>
#include <cmath>
#include <complex>
#include <string>
#include <vector>

#include "ops/byte_reference.h"
#include "ops/fft_reference.h"

namespace loom {
namespace {

using testing::cdouble;
using testing::complex_values;
using testing::expect_close;
using testing::expect_error;
using testing::interleaved;
using testing::naive_dft_axis;
using testing::random_complex;
using testing::random_tensor;

struct Case {
  Extents shape;
  std::vector<int64_t> axes;
};

std::string describe(const char* op, const Case& c, FftNorm norm, int64_t n = 0) {
  std::string s = std::string(op) + " shape [";
  for (size_t i = 0; i < c.shape.size(); ++i) s += (i ? ", " : "") + std::to_string(c.shape[i]);
  s += "] axes [";
  for (size_t i = 0; i < c.axes.size(); ++i) s += (i ? ", " : "") + std::to_string(c.axes[i]);
  return s + "] norm " + fft_norm_name(norm) + (n ? " n " + std::to_string(n) : "");
}

std::vector<int> normalized(const std::vector<int64_t>& axes, size_t rank) {
  std::vector<int> out;
  for (int64_t a : axes) out.push_back(int(a < 0 ? a + int64_t(rank) : a));
  return out;
}

double norm_scale(FftNorm norm, bool inverse, int64_t points) {
  if (norm == FftNorm::ortho) return 1.0 / std::sqrt(double(points));
  const bool scaled = norm == FftNorm::forward ? !inverse : inverse;
  return scaled ? 1.0 / double(points) : 1.0;
}

double max_abs(const std::vector<cdouble>& x) {
  double m = 0;
  for (const cdouble& v : x) m = std::max(m, std::abs(v));
  return m;
}

// Every output of a transform of `points` points sums that many terms of size up to
// max|x| * scale (the twiddles' f32 rounding adds the same relative error per term), so the
// accumulation tolerance applies with K = points.
testing::Tolerance transform_tolerance(int64_t points, double term) {
  return testing::accumulation_tolerance(DType::f32, points, term);
}

// Sizes: 1, primes (2, 3, 5, 7, 13, 17, 97), products of small primes (6, 12, 30, 100, 210,
// 1000), powers of two (8, 64, 256, 1024); odd and even axes; batches before and after.
const std::vector<Case> kCases = {
    {{1}, {-1}},
    {{2}, {0}},
    {{3}, {0}},
    {{8}, {-1}},
    {{13}, {0}},
    {{17}, {0}},
    {{97}, {0}},
    {{100}, {0}},
    {{210}, {0}},
    {{1000}, {0}},
    {{1024}, {0}},
    {{4, 6}, {-1}},
    {{5, 7}, {0}},
    {{3, 12, 5}, {1}},
    {{3, 4, 5}, {0, 2}},
    {{2, 6, 30}, {1, 2}},
    {{64, 3}, {0}},
    {{3, 5, 6, 4}, {0, 1, 3}},
    {{8, 9, 10}, {0, 1, 2}},
    {{7, 256}, {-1}},
    {{2, 3, 5, 7}, {3, 1}},
    // Enough lines to run on several threads (each real plan has its own scratch).
    {{256, 256}, {-1}},
};

const FftNorm kNorms[] = {FftNorm::backward, FftNorm::ortho, FftNorm::forward};

TEST(Fft, ComplexForwardAndInverseMatchNaiveDft) {
  for (const Case& c : kCases)
    for (bool inverse : {false, true})
      for (FftNorm norm : kNorms) {
        TensorData x = random_complex(c.shape);
        Graph g;
        Tensor p = g.placeholder("x", to_shape(c.shape), DType::c64);
        Tensor y = inverse ? ifft(p, c.axes, norm) : fft(p, c.axes, norm);
        TensorData got = testing::run_once(g, {y}, {{"x", x}}).at(0);
        ASSERT_EQ(got.shape(), c.shape);
        std::vector<cdouble> want = complex_values(x);
        int64_t points = 1;
        for (int a : normalized(c.axes, c.shape.size())) {
          naive_dft_axis(want, c.shape, a, inverse ? 1 : -1);
          points *= c.shape[size_t(a)];
        }
        const double scale = norm_scale(norm, inverse, points);
        const double term = max_abs(complex_values(x)) * scale;
        for (cdouble& v : want) v *= scale;
        expect_close(got, interleaved(want), transform_tolerance(points, term),
                     describe(inverse ? "ifft" : "fft", c, norm));
      }
}

TEST(Fft, RealForwardMatchesNaiveDft) {
  for (const Case& c : kCases)
    for (FftNorm norm : kNorms) {
      TensorData x = random_tensor(DType::f32, c.shape);
      Graph g;
      Tensor p = g.placeholder("x", to_shape(c.shape), DType::f32);
      Tensor y = rfft(p, c.axes, norm);
      TensorData got = testing::run_once(g, {y}, {{"x", x}}).at(0);
      const std::vector<int> axes = normalized(c.axes, c.shape.size());
      Extents out_shape = c.shape;
      out_shape[size_t(axes.back())] = c.shape[size_t(axes.back())] / 2 + 1;
      ASSERT_EQ(got.shape(), out_shape);
      std::vector<cdouble> full = complex_values(x);
      int64_t points = 1;
      for (int a : axes) {
        naive_dft_axis(full, c.shape, a, -1);
        points *= c.shape[size_t(a)];
      }
      const double scale = norm_scale(norm, false, points);
      // Keep the first n/2 + 1 frequencies along the real axis.
      std::vector<cdouble> want;
      for (int64_t i = 0; i < numel(c.shape); ++i) {
        std::vector<int64_t> idx = testing::unravel(i, c.shape);
        if (idx[size_t(axes.back())] < out_shape[size_t(axes.back())])
          want.push_back(full[size_t(i)] * scale);
      }
      expect_close(got, interleaved(want),
                   transform_tolerance(points, max_abs(complex_values(x)) * scale),
                   describe("rfft", c, norm));
    }
}

// numpy's irfftn: the complex inverse over the other axes, then per line of the real axis the
// full Hermitian spectrum of n points (imaginary parts of the zero and n/2 frequencies
// dropped), inverse DFT, real part.
std::vector<double> irfft_reference(const TensorData& x, const Extents& in_shape,
                                    const std::vector<int>& axes, int64_t n, double scale,
                                    Extents& out_shape) {
  std::vector<cdouble> spec = complex_values(x);
  for (size_t i = 0; i + 1 < axes.size(); ++i) naive_dft_axis(spec, in_shape, axes[i], 1);
  const int ra = axes.back();
  const int64_t m = in_shape[size_t(ra)], half = n / 2 + 1;
  out_shape = in_shape;
  out_shape[size_t(ra)] = n;
  int64_t inner = 1;
  for (size_t d = size_t(ra) + 1; d < in_shape.size(); ++d) inner *= in_shape[d];
  const int64_t outer = numel(in_shape) / (m * inner);
  std::vector<double> out(size_t(outer * n * inner));
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      std::vector<cdouble> line(size_t(n), 0.0);
      for (int64_t k = 0; k < std::min(m, half); ++k)
        line[size_t(k)] = spec[size_t((o * m + k) * inner + i)];
      line[0] = line[0].real();
      if (n % 2 == 0) line[size_t(n / 2)] = line[size_t(n / 2)].real();
      for (int64_t k = half; k < n; ++k) line[size_t(k)] = std::conj(line[size_t(n - k)]);
      naive_dft_axis(line, {n}, 0, 1);
      for (int64_t k = 0; k < n; ++k)
        out[size_t((o * n + k) * inner + i)] = line[size_t(k)].real() * scale;
    }
  return out;
}

TEST(Fft, RealInverseMatchesNaiveDft) {
  for (const Case& c : kCases)
    for (FftNorm norm : kNorms) {
      const std::vector<int> axes = normalized(c.axes, c.shape.size());
      const int64_t real_length = c.shape[size_t(axes.back())];
      // n given as the real length (odd or even), inferred (2 (m - 1)), and longer than the
      // spectrum covers (missing frequencies are zero).
      Extents in_shape = c.shape;
      in_shape[size_t(axes.back())] = real_length / 2 + 1;
      for (int64_t n : {real_length, int64_t(0), real_length + 3}) {
        if (n == 0 && in_shape[size_t(axes.back())] < 2) continue;
        TensorData x = random_complex(in_shape);
        Graph g;
        Tensor p = g.placeholder("x", to_shape(in_shape), DType::c64);
        Tensor y = irfft(p, n, c.axes, norm);
        TensorData got = testing::run_once(g, {y}, {{"x", x}}).at(0);
        const int64_t used_n = n ? n : 2 * (in_shape[size_t(axes.back())] - 1);
        int64_t points = used_n;
        for (size_t i = 0; i + 1 < axes.size(); ++i) points *= in_shape[size_t(axes[i])];
        const double scale = norm_scale(norm, true, points);
        Extents out_shape;
        std::vector<double> want = irfft_reference(x, in_shape, axes, used_n, scale, out_shape);
        ASSERT_EQ(got.shape(), out_shape) << describe("irfft", c, norm, n);
        // The Hermitian extension doubles the terms' count and size at most.
        expect_close(got, want,
                     transform_tolerance(2 * points, 2 * max_abs(complex_values(x)) * scale),
                     describe("irfft", c, norm, n));
      }
    }
}

TEST(Fft, RoundTripsParsevalAndDelta) {
  for (const Case& c : kCases) {
    const std::vector<int> axes = normalized(c.axes, c.shape.size());
    int64_t points = 1;
    for (int a : axes) points *= c.shape[size_t(a)];
    TensorData xc = random_complex(c.shape);
    TensorData xr = random_tensor(DType::f32, c.shape);
    const int64_t n = c.shape[size_t(axes.back())];
    Graph g;
    Tensor pc = g.placeholder("xc", to_shape(c.shape), DType::c64);
    Tensor pr = g.placeholder("xr", to_shape(c.shape), DType::f32);
    Tensor spectrum = fft(pc, c.axes, FftNorm::ortho);
    Tensor back = ifft(spectrum, c.axes, FftNorm::ortho);
    Tensor real_back = irfft(rfft(pr, c.axes), n, c.axes);
    // Parseval with ortho: sum |x|^2 = sum |X|^2.
    Tensor re = real(spectrum), im = imag(spectrum);
    Tensor energy = sum(re * re + im * im);
    auto out = testing::run_once(g, {back, real_back, energy}, {{"xc", xc}, {"xr", xr}});
    const std::string what = describe("round trip", c, FftNorm::ortho);
    expect_close(out[0], interleaved(complex_values(xc)), transform_tolerance(2 * points, 1.0),
                 what);
    expect_close(out[1], testing::to_doubles(xr), transform_tolerance(4 * points, 1.0), what);
    double want_energy = 0;
    for (const cdouble& v : complex_values(xc)) want_energy += std::norm(v);
    expect_close(out[2], {want_energy},
                 testing::accumulation_tolerance(DType::f32, 2 * numel(c.shape), 1.0), what);
  }
  // A unit impulse at the origin has the all-ones spectrum, exactly: every butterfly adds
  // zeros to one.
  for (const Case& c : kCases) {
    std::vector<float> delta(size_t(numel(c.shape)), 0.f);
    delta[0] = 1.f;
    Graph g;
    Tensor p = g.placeholder("x", to_shape(c.shape), DType::f32);
    Tensor y = fft(complex(p, g.constant(0.0)), c.axes);
    TensorData got =
        testing::run_once(g, {y}, {{"x", TensorData::from_vector(delta, c.shape)}}).at(0);
    // Lines through the origin get ones; others stay zero.
    std::vector<double> want(size_t(2 * numel(c.shape)), 0.0);
    const std::vector<int> axes = normalized(c.axes, c.shape.size());
    for (int64_t i = 0; i < numel(c.shape); ++i) {
      std::vector<int64_t> idx = testing::unravel(i, c.shape);
      bool on = true;
      for (size_t d = 0; d < idx.size(); ++d)
        if (std::find(axes.begin(), axes.end(), int(d)) == axes.end() && idx[d] != 0) on = false;
      if (on) want[size_t(2 * i)] = 1.0;
    }
    expect_close(got, want, testing::Tolerance{0.0, 0.0}, describe("delta", c, FftNorm::backward));
  }
}

TEST(Fft, PlansSurviveRunsOfNewShapes) {
  // A symbolic batch: the node's plan state is rebuilt for a new binding, reused for an old one.
  Graph g;
  Tensor p = g.placeholder("x", {"b", 12}, DType::c64);
  CompileOptions options;
  options.outputs = {fft(p)};
  Executable exe = compile(g, options);
  for (int64_t b : {3, 5, 3}) {
    TensorData x = random_complex({b, 12});
    TensorData got = exe.run({{"x", x}}).at(0);
    std::vector<cdouble> want = complex_values(x);
    naive_dft_axis(want, {b, 12}, 1, -1);
    expect_close(got, interleaved(want), transform_tolerance(12, 1.5),
                 "batch " + std::to_string(b));
  }
}

TEST(Fft, Errors) {
  Graph g;
  Tensor c = g.placeholder("c", {4, 6}, DType::c64);
  Tensor r = g.placeholder("r", {4, 6}, DType::f32);
  expect_error([&] { fft(r); }, ErrorKind::dtype, {"fft", "f32"});
  expect_error([&] { rfft(c); }, ErrorKind::dtype, {"rfft", "c64"});
  expect_error([&] { irfft(r); }, ErrorKind::dtype, {"irfft"});
  expect_error([&] { fft(c, {2}); }, ErrorKind::shape, {"fft", "axis 2"});
  expect_error([&] { fft(c, {0, 0}); }, ErrorKind::shape, {"fft", "repeated"});
  expect_error([&] { fft(c, {}); }, ErrorKind::value, {"fft", "one, two or three axes"});
  Tensor c4 = g.placeholder("c4", {2, 2, 2, 2}, DType::c64);
  expect_error([&] { fft(c4, {0, 1, 2, 3}); }, ErrorKind::value, {"fft", "three"});
  Tensor one = g.placeholder("one", {4, 1}, DType::c64);
  expect_error([&] { irfft(one); }, ErrorKind::shape, {"irfft", "at least 2"});
  expect_error([&] { irfft(c, -1); }, ErrorKind::value, {"irfft", "n"});
  expect_error(
      [&] {
        g.add_node1("fft", {c}, Attributes{{"norm", std::string("half")}});
      },
      ErrorKind::value, {"fft", "norm"});
}

}  // namespace
}  // namespace loom
