// complex64 ops on the CPU against std::complex<double>: parts, magnitude, argument,
// conjugate, complex(re, im), and add / sub / mul / div with broadcasting; TensorData in and
// out of c64.
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
using testing::random_complex;
using testing::tolerance_for;

TEST(Complex, TensorDataRoundTrip) {
  std::vector<std::complex<float>> values = {{1.f, -2.f}, {0.5f, 3.f}, {-0.f, 1e-30f}};
  TensorData t = TensorData::from_vector(values, {3});
  EXPECT_EQ(t.dtype(), DType::c64);
  EXPECT_EQ(t.nbytes(), 24u);
  EXPECT_EQ(t.to_vector<std::complex<float>>(), values);
  EXPECT_EQ(t.to_floats(), (std::vector<float>{1.f, -2.f, 0.5f, 3.f, -0.f, 1e-30f}));
  TensorData from_real = TensorData::from_floats({2.f, -1.f}, DType::c64, {2});
  EXPECT_EQ(from_real.to_floats(), (std::vector<float>{2.f, 0.f, -1.f, 0.f}));
}

TEST(Complex, UnaryOps) {
  for (Extents shape : {Extents{7}, Extents{3, 40}, Extents{300, 301}}) {
    TensorData x = random_complex(shape, -4.f, 4.f);
    Graph g;
    Tensor p = g.placeholder("x", to_shape(shape), DType::c64);
    auto out = testing::run_once(g, {real(p), imag(p), abs(p), angle(p), conj(p), abs_squared(p)},
                                 {{"x", x}});
    std::vector<cdouble> v = complex_values(x);
    std::vector<double> re, im, mag, arg, power;
    std::vector<cdouble> cj;
    for (const cdouble& z : v) {
      re.push_back(z.real()), im.push_back(z.imag()), mag.push_back(std::abs(z));
      arg.push_back(std::arg(z)), cj.push_back(std::conj(z)), power.push_back(std::norm(z));
    }
    EXPECT_EQ(out[0].dtype(), DType::f32);
    EXPECT_EQ(out[2].dtype(), DType::f32);
    EXPECT_EQ(out[4].dtype(), DType::c64);
    expect_close(out[0], re, {0, 0}, "real");
    expect_close(out[1], im, {0, 0}, "imag");
    expect_close(out[2], mag, tolerance_for(DType::f32), "abs");
    // atan2f is correctly rounded to a few ulp; near +-pi an ulp is 2.4e-7.
    expect_close(out[3], arg, {1e-6, 1e-6}, "angle");
    expect_close(out[4], interleaved(cj), {0, 0}, "conj");
    // Two rounded products and a rounded sum of non-negative terms: within 2 f32 ulp.
    expect_close(out[5], power, {2.5e-7, 0}, "abs_squared");
  }
}

TEST(Complex, FromPartsWithBroadcasting) {
  TensorData re = testing::random_tensor(DType::f32, {4, 1, 5});
  TensorData im = testing::random_tensor(DType::f32, {3, 1});
  Graph g;
  Tensor pr = g.placeholder("re", {4, 1, 5}), pi = g.placeholder("im", {3, 1});
  Tensor y = complex(pr, pi);
  EXPECT_EQ(y.shape(), (Shape{4, 3, 5}));
  TensorData got = testing::run_once(g, {y}, {{"re", re}, {"im", im}}).at(0);
  std::vector<double> want;
  auto r = testing::to_doubles(re), i = testing::to_doubles(im);
  for (int64_t a = 0; a < 4; ++a)
    for (int64_t b = 0; b < 3; ++b)
      for (int64_t c = 0; c < 5; ++c)
        want.push_back(r[size_t(a * 5 + c)]), want.push_back(i[size_t(b)]);
  expect_close(got, want, {0, 0}, "complex");
}

TEST(Complex, ArithmeticWithBroadcasting) {
  struct Case {
    Extents a, b;
  };
  const std::vector<Case> cases = {{{17}, {17}},       {{3, 5}, {5}}, {{3, 1}, {1, 4}},
                                   {{2, 3, 4}, {}},    {{}, {6}},     {{64, 257}, {64, 257}},
                                   {{5, 1, 3}, {4, 1}}};
  for (const Case& c : cases) {
    TensorData a = random_complex(c.a, -3.f, 3.f), b = random_complex(c.b, -3.f, 3.f);
    Graph g;
    Tensor pa = g.placeholder("a", to_shape(c.a), DType::c64);
    Tensor pb = g.placeholder("b", to_shape(c.b), DType::c64);
    auto out = testing::run_once(g, {pa + pb, pa - pb, pa * pb, pa / pb}, {{"a", a}, {"b", b}});
    Extents shape = out[0].shape();
    std::vector<cdouble> va = complex_values(a), vb = complex_values(b);
    std::vector<cdouble> sum, diff, prod, quot;
    for (int64_t i = 0; i < numel(shape); ++i) {
      std::vector<int64_t> idx = testing::unravel(i, shape);
      cdouble x = va[size_t(testing::broadcast_index(idx, c.a))];
      cdouble y = vb[size_t(testing::broadcast_index(idx, c.b))];
      sum.push_back(x + y), diff.push_back(x - y), prod.push_back(x * y), quot.push_back(x / y);
    }
    // Each part is one f32 operation (sum), two products and a sum (mul), or Smith's few
    // operations (div): a few ulp of the operands' magnitude, which cancellation can leave
    // beside a small result, so the bound is absolute in the operands' scale (3).
    const testing::Tolerance tol{1e-5, 8 * 3 * 1.2e-7};
    expect_close(out[0], interleaved(sum), tol, "add");
    expect_close(out[1], interleaved(diff), tol, "sub");
    expect_close(out[2], interleaved(prod), {1e-5, 8 * 9 * 1.2e-7}, "mul");
    expect_close(out[3], interleaved(quot), {1e-5, 1e-5}, "div");
  }
}

TEST(Complex, Errors) {
  Graph g;
  Tensor c = g.placeholder("c", {3}, DType::c64);
  Tensor f = g.placeholder("f", {3});
  expect_error([&] { real(f); }, ErrorKind::dtype, {"real", "f32"});
  expect_error([&] { complex(c, c); }, ErrorKind::dtype, {"complex"});
  expect_error([&] { c + f; }, ErrorKind::dtype, {"add"});
  expect_error([&] { pow(c, c); }, ErrorKind::dtype, {"pow", "c64"});
  expect_error([&] { exp(c); }, ErrorKind::dtype, {"exp"});
  Tensor g3 = g.placeholder("g3", {4});
  expect_error([&] { complex(f, g3); }, ErrorKind::shape, {"complex"});
}

}  // namespace
}  // namespace loom
