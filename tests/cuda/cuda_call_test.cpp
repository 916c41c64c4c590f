// Callables on CUDA: the callee runs on the caller's stream inside its captured graph; a rebind
// drops the graph (one eager run), and later runs capture and replay with the new callee.
#include "cuda/cuda_test_util.h"

namespace loom {
namespace {

using namespace testing;

constexpr int64_t kIn = 64, kRank = 8, kOut = 32, kRows = 5;

struct Weights {
  TensorData w = random_tensor(DType::f32, {kOut, kIn});
  TensorData a = random_tensor(DType::f32, {kRank, kIn});
  TensorData b = random_tensor(DType::f32, {kOut, kRank});
};

Tensor low_rank(Graph& g, const Tensor& x, const Weights& w) {
  return matmul(matmul(x, g.constant(w.a), false, true), g.constant(w.b), false, true);
}

std::shared_ptr<Executable> callee(const Weights& w, Device device) {
  Graph g;
  Tensor x = g.placeholder("x", {kRows, kIn});
  CompileOptions options;
  options.device = device;
  options.outputs = {low_rank(g, x, w)};
  return std::make_shared<Executable>(compile(g, options));
}

// The model with the adapter inlined, on the CPU: the reference.
std::vector<double> reference(const Weights& base, const Weights& adapter, const TensorData& h) {
  Graph g;
  Tensor x = g.placeholder("h", {kRows, kIn});
  Tensor y = relu(matmul(x, g.constant(base.w), false, true)) + low_rank(g, x, adapter);
  return to_doubles(run_once(g, {y}, {{"h", h}})[0]);
}

TEST(CudaCall, CapturedWithTheCalleeAndRecapturedAfterARebind) {
  LOOM_REQUIRE_CUDA();
  Weights base, first, second;
  Graph g;
  Tensor h = g.placeholder("h", {kRows, kIn});
  Tensor y = relu(matmul(h, g.constant(base.w), false, true)) +
             call("adapter", {h}, DType::f32, {kRows, kOut});
  CompileOptions options;
  options.device = gpu();
  options.outputs = {y};
  options.callables["adapter"] = callee(first, gpu());
  Executable exe = compile(g, options);
  TensorData x = random_tensor(DType::f32, {kRows, kIn});
  // Sums of kIn and kRank products on the GPU's GEMMs (TF32 is off in Loom's f32 matmul).
  Tolerance tol = accumulation_tolerance(DType::f32, kIn * kRank, 4.0);
  std::vector<double> want_first = reference(base, first, x);
  std::vector<double> want_second = reference(base, second, x);
  for (int run = 0; run < 3; ++run)
    expect_close(exe.run({{"h", x}})[0].to_host(), want_first, tol,
                 "first, run " + std::to_string(run));
  bool real_gpu = cuda_available() && !cuda_tests_on_cpu();
  if (real_gpu) {
    EXPECT_TRUE(exe.last_run_stats().replayed_graph);
  }
  exe.bind("adapter", callee(second, gpu()));
  expect_close(exe.run({{"h", x}})[0].to_host(), want_second, tol, "after rebind");
  EXPECT_FALSE(exe.last_run_stats().replayed_graph);  // the old graph held the old callee
  for (int run = 0; run < 3; ++run)
    expect_close(exe.run({{"h", x}})[0].to_host(), want_second, tol,
                 "second, run " + std::to_string(run));
  if (real_gpu) {
    EXPECT_TRUE(exe.last_run_stats().replayed_graph);
  }
  // A callee on another device is refused at bind.
  if (real_gpu) {
    EXPECT_EQ(error_kind([&] { exe.bind("adapter", callee(second, Device::cpu())); }),
              ErrorKind::device);
  }
}

}  // namespace
}  // namespace loom
