// Views on CUDA: cuBLASLt and the i32 kernel read a transposed view as a transpose flag (one
// kernel, no copy); other kernels read a gathered copy of a view (Backend::copy_strided on
// the device), also inside a captured CUDA graph; outputs that are views are gathered when
// copied out. Results against naive host references, computed in double.
#include <cmath>
#include <complex>

#include "cuda/cuda_test_util.h"
#include "loom/fft.h"

namespace loom {
namespace {

using testing::random_tensor;
using testing::to_doubles;

std::vector<double> naive_at_b(const std::vector<double>& a, const std::vector<double>& b,
                               int64_t batch, int64_t m, int64_t k, int64_t n) {
  // a stored [batch, k, m] (the product reads its transpose), b [batch, k, n].
  std::vector<double> c(size_t(batch * m * n), 0.0);
  for (int64_t s = 0; s < batch; ++s)
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j)
        for (int64_t p = 0; p < k; ++p)
          c[size_t((s * m + i) * n + j)] +=
              a[size_t((s * k + p) * m + i)] * b[size_t((s * k + p) * n + j)];
  return c;
}

TEST(CudaViews, TransposedOperandIsAFlag) {
  LOOM_REQUIRE_CUDA();
  const int64_t batch = 3, m = 33, k = 64, n = 40;
  std::vector<DType> dtypes = testing::kFloatDTypes;
  dtypes.push_back(DType::i32);
  for (DType dtype : dtypes) {
    Graph g;
    Tensor a = g.placeholder("a", {batch, k, m}, dtype);
    Tensor b = g.placeholder("b", {batch, k, n}, dtype);
    Tensor c = matmul(transpose(a), b);
    const bool integer = dtype == DType::i32;
    TensorData av =
        random_tensor(dtype, {batch, k, m}, integer ? -20.f : -1.f, integer ? 20.f : 1.f);
    TensorData bv =
        random_tensor(dtype, {batch, k, n}, integer ? -20.f : -1.f, integer ? 20.f : 1.f);
    CompileOptions options;
    options.device = testing::gpu();
    options.outputs = {c};
    Executable exe = compile(g, options);
    std::vector<double> want = naive_at_b(to_doubles(av), to_doubles(bv), batch, m, k, n);
    for (int run = 0; run < testing::kRuns; ++run) {  // eager, captured, replayed
      TensorData got = exe.run({{"a", av}, {"b", bv}})[0].to_host();
      std::string what = std::string("A^T B ") + dtype_name(dtype) + " run " + std::to_string(run);
      if (integer)
        testing::expect_close(got, want, {0, 0}, what);
      else
        testing::expect_close(got, want, testing::accumulation_tolerance(dtype, k), what);
      EXPECT_EQ(exe.last_run_stats().kernels, 1u) << what << "\n" << exe.dump();
    }
  }
}

TEST(CudaViews, GatheredViewsAndViewOutputs) {
  LOOM_REQUIRE_CUDA();
  Graph g;
  Tensor x = g.placeholder("x", {6, 10});
  Tensor stepped = slice(x, {0, 1}, {1, 0}, {6, 10}, {2, 3});  // an output that is a view
  Tensor e = exp(stepped);                                     // a kernel reading a gather
  Tensor repeated = exp(broadcast_to(slice(x, {0}, {2}, {3}), {4, 1, 10}));
  Tensor flat = reshape(transpose(x), {60});  // the planner's copy step
  TensorData xv = random_tensor(DType::f32, {6, 10});
  std::vector<double> v = to_doubles(xv), w0, w1, w2, w3;
  for (int64_t i = 1; i < 6; i += 2)
    for (int64_t j = 0; j < 10; j += 3) {
      w0.push_back(v[size_t(i * 10 + j)]);
      w1.push_back(std::exp(v[size_t(i * 10 + j)]));
    }
  for (int64_t r = 0; r < 4; ++r)
    for (int64_t j = 0; j < 10; ++j) w2.push_back(std::exp(v[size_t(2 * 10 + j)]));
  for (int64_t j = 0; j < 10; ++j)
    for (int64_t i = 0; i < 6; ++i) w3.push_back(v[size_t(i * 10 + j)]);
  CompileOptions options;
  options.device = testing::gpu();
  options.outputs = {stepped, e, repeated, flat};
  Executable exe = compile(g, options);
  for (int run = 0; run < testing::kRuns; ++run) {
    auto out = testing::to_host(exe.run({{"x", xv}}));
    const std::string what = "run " + std::to_string(run);
    testing::expect_close(out[0], w0, {0, 0}, "stepped slice " + what);
    testing::expect_close(out[1], w1, testing::tolerance_for(DType::f32), "exp(slice) " + what);
    testing::expect_close(out[2], w2, testing::tolerance_for(DType::f32), "exp(broadcast) " + what);
    testing::expect_close(out[3], w3, {0, 0}, "reshape(transpose) " + what);
    EXPECT_EQ(exe.last_run_stats().kernels, 5u) << exe.dump();  // 2 gathers, 2 exps, 1 copy
  }
}

// frames -> rfft: the frames are a view; cuFFT's kernel reads a gathered copy of them.
TEST(CudaViews, FramesIntoRfft) {
  LOOM_REQUIRE_CUDA();
  const int64_t rows = 2, t = 300, length = 64, hop = 20;
  const int64_t count = 1 + (t - length) / hop, bins = length / 2 + 1;
  Graph g;
  Tensor x = g.placeholder("x", {rows, t});
  CompileOptions options;
  options.device = testing::gpu();
  options.outputs = {rfft(frames(x, length, hop))};
  Executable exe = compile(g, options);
  TensorData xv = random_tensor(DType::f32, {rows, t});
  std::vector<double> s = to_doubles(xv), want;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t f = 0; f < count; ++f)
      for (int64_t q = 0; q < bins; ++q) {
        std::complex<double> z = 0;
        for (int64_t i = 0; i < length; ++i)
          z += s[size_t(r * t + f * hop + i)] *
               std::polar(1.0, -2 * M_PI * double(q * i) / double(length));
        want.push_back(z.real());
        want.push_back(z.imag());
      }
  for (int run = 0; run < testing::kRuns; ++run) {
    TensorData got = exe.run({{"x", xv}})[0].to_host();
    testing::expect_close(got, want, {1e-4, 1e-4}, "rfft(frames) run " + std::to_string(run));
  }
}

// assign(v, transpose(read(v))) reads a snapshot, not the buffer it is overwriting.
TEST(CudaViews, AssignOfAViewOfItsOwnVariable) {
  LOOM_REQUIRE_CUDA();
  const int64_t n = 64;
  TensorData init = random_tensor(DType::f32, {n, n});
  std::vector<double> v = to_doubles(init), want;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) want.push_back(v[size_t(j * n + i)]);
  Graph g;
  Tensor var = g.variable("m", init);
  g.assign(var, transpose(g.read(var)));
  CompileOptions options;
  options.device = testing::gpu();
  options.outputs = {g.read(var) * 1.0};
  Executable exe = compile(g, options);
  exe.run({});
  testing::expect_close(exe.variables().get("m").to_host(), want, {0, 0}, "m after one run");
}

}  // namespace
}  // namespace loom
