// Fourier transforms, complex64 ops, frames and the STFT / log-mel helpers on CUDA (cuFFT)
// against the CPU backend (KissFFT), over the sizes and axes of tests/ops/fft_test.cpp; three
// runs each, the third a CUDA-graph replay (plans and work areas are made before capture).
#include <string>
#include <vector>

#include "cuda/cuda_test_util.h"
#include "ops/fft_reference.h"

namespace loom {
namespace {

using testing::expect_gpu_matches_cpu;
using testing::random_complex;
using testing::random_tensor;

struct Case {
  Extents shape;
  std::vector<int64_t> axes;
};

// Neighbouring axes (one cuFFT plan), separated ones (several), the real axis first or last,
// inner dims after the run (batched by stride), primes and powers of two.
const std::vector<Case> kCases = {
    {{1}, {-1}},
    {{97}, {0}},
    {{1000}, {0}},
    {{4096}, {0}},
    {{4, 6}, {-1}},
    {{5, 7}, {0}},
    {{3, 12, 5}, {1}},
    {{3, 4, 5}, {0, 2}},
    {{2, 6, 30}, {1, 2}},
    {{8, 9, 10}, {0, 1, 2}},
    {{3, 5, 6, 4}, {0, 1, 3}},
    {{2, 3, 5, 7}, {3, 1}},
    // Strided real axes (dims after the real axis); an odd block per outer index goes through
    // complex transforms in the workspace.
    {{2, 3, 5, 7}, {1}},
    {{3, 5, 3}, {1}},
    {{3, 4, 6}, {2, 0}},
    {{2, 5, 3, 4}, {3, 2, 1}},
    {{4, 9, 2}, {1}},
    {{16, 64, 64}, {-2, -1}},
};

std::string name_of(const char* op, const Case& c) {
  std::string s = std::string(op) + " [";
  for (size_t i = 0; i < c.shape.size(); ++i) s += (i ? "," : "") + std::to_string(c.shape[i]);
  s += "] axes [";
  for (size_t i = 0; i < c.axes.size(); ++i) s += (i ? "," : "") + std::to_string(c.axes[i]);
  return s + "]";
}

int64_t points_of(const Case& c) {
  int64_t p = 1;
  for (int64_t a : c.axes) p *= c.shape[size_t(a < 0 ? a + int64_t(c.shape.size()) : a)];
  return p;
}

TEST(CudaFft, TransformsMatchCpu) {
  LOOM_REQUIRE_CUDA();
  for (const Case& c : kCases) {
    Graph g;
    Tensor xc = g.placeholder("xc", to_shape(c.shape), DType::c64);
    Tensor xr = g.placeholder("xr", to_shape(c.shape), DType::f32);
    const int64_t n = c.shape[size_t(c.axes.back() < 0 ? c.axes.back() + int64_t(c.shape.size())
                                                       : c.axes.back())];
    std::vector<Tensor> outs = {
        fft(xc, c.axes), ifft(xc, c.axes, FftNorm::ortho), rfft(xr, c.axes, FftNorm::forward),
        irfft(rfft(xr, c.axes), n, c.axes), irfft(xc, n + 1, c.axes, FftNorm::ortho)};
    // Both backends are within the accumulation bound of the exact transform (inputs below 1,
    // unnormalised outputs up to `points` terms), so of each other within twice it.
    testing::Tolerance tol = testing::accumulation_tolerance(DType::f32, 4 * points_of(c), 2.0);
    expect_gpu_matches_cpu(
        g, outs, {{"xc", random_complex(c.shape)}, {"xr", random_tensor(DType::f32, c.shape)}},
        name_of("fft family", c), tol);
  }
}

TEST(CudaFft, ComplexOpsMatchCpu) {
  LOOM_REQUIRE_CUDA();
  Graph g;
  Tensor a = g.placeholder("a", {64, 1, 33}, DType::c64);
  Tensor b = g.placeholder("b", {5, 1}, DType::c64);
  Tensor re = g.placeholder("re", {3, 1}), im = g.placeholder("im", {1, 1000});
  std::vector<Tensor> outs = {a + b,  a - b,    a * b,   a / b,           real(a),       imag(a),
                              abs(a), angle(a), conj(a), complex(re, im), abs_squared(a)};
  // A few f32 operations per element; the GPU may fuse multiplies and adds.
  expect_gpu_matches_cpu(g, outs,
                         {{"a", random_complex({64, 1, 33}, 0.5f, 2.f)},
                          {"b", random_complex({5, 1}, 0.5f, 2.f)},
                          {"re", random_tensor(DType::f32, {3, 1})},
                          {"im", random_tensor(DType::f32, {1, 1000})}},
                         "complex ops", testing::Tolerance{1e-5, 1e-5});
}

TEST(CudaFft, FramesStftAndLogMelMatchCpu) {
  LOOM_REQUIRE_CUDA();
  Graph g;
  Tensor x = g.placeholder("x", {4, 16000});
  StftOptions o;
  o.n_fft = 400;
  o.hop = 160;
  LogMelOptions mel;
  Tensor w = g.placeholder("w", {64});
  Tensor w50 = g.placeholder("w50", {50});  // a length not a multiple of 4: one block a frame
  std::vector<Tensor> outs = {frames(x, 400, 160, 200, "reflect"),
                              frames(x, 64, 7, 3),
                              windowed_frames(x, 64, 7, 3, "reflect", w),
                              windowed_frames(x, 64, 30, 40, "constant", w),
                              windowed_frames(x, 50, 9, 25, "reflect", w50),
                              overlap_add(frames(x, 50, 20), 20),
                              stft(x, o),
                              log_mel_spectrogram(x, mel),
                              istft(stft(x, o), o, 16000)};
  testing::Tolerance tol = testing::accumulation_tolerance(DType::f32, 4 * 400, 2.0);
  expect_gpu_matches_cpu(g, outs,
                         {{"x", random_tensor(DType::f32, {4, 16000})},
                          {"w", random_tensor(DType::f32, {64})},
                          {"w50", random_tensor(DType::f32, {50})}},
                         "frames, stft, log-mel, istft", tol);
}

}  // namespace
}  // namespace loom
