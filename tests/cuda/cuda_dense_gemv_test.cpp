// The dense GEMV kernel of matmul (src/backends/cuda/dense_gemv.cu), tested itself and not
// only when the tactic selector picks it: called directly against an f32 reference of the
// same (rounded) inputs, for M 1..8 (and more, launched per 8 rows), odd and aligned K and N,
// misaligned pointers (the one-element path), f16 and bf16, with and without a bias; then as
// the only matmul kernel of an executable (x W^T and x times a transposed view of W, three
// runs: eager, captured, replayed), and what its `supports` accepts.
#include <cuda_runtime.h>

#include <string>
#include <vector>

#include "backends/cuda/dense_gemv.h"
#include "core/kernel_test_hooks.h"
#include "cuda/cuda_test_util.h"
#include "ir/node.h"

namespace loom {
namespace {

using testing::random_tensor;
using testing::to_doubles;

// y [m, n] = x [m, k] w [n, k]^T (+ bias) in double from the rounded inputs.
std::vector<double> reference(const TensorData& x, const TensorData& w, const TensorData* bias,
                              int64_t m, int64_t n, int64_t k) {
  auto xs = to_doubles(x), ws = to_doubles(w);
  std::vector<double> bs = bias ? to_doubles(*bias) : std::vector<double>(size_t(n), 0.0);
  std::vector<double> y(size_t(m * n));
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double acc = 0;
      for (int64_t p = 0; p < k; ++p) acc += xs[size_t(i * k + p)] * ws[size_t(j * k + p)];
      y[size_t(i * n + j)] = acc + bs[size_t(j)];
    }
  return y;
}

// Device copy of `t` starting `offset_elements` into a larger buffer (so misaligned when
// the offset is odd); the buffer is returned to keep it alive.
void* device_copy(const TensorData& t, int64_t offset_elements, TensorData& buffer) {
  const size_t elem = storage_bytes(t.dtype(), 1);
  buffer = TensorData::zeros(DType::u8, {int64_t(t.nbytes() + elem * size_t(offset_elements) + 16)},
                             Device::cuda());
  char* at = static_cast<char*>(buffer.data()) + elem * size_t(offset_elements);
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);  // the zeroing, on the backend's stream
  EXPECT_EQ(cudaMemcpy(at, t.data(), t.nbytes(), cudaMemcpyHostToDevice), cudaSuccess);
  return at;
}

struct GemvCase {
  int64_t m, n, k;
  bool bias = false;
  int64_t offset = 0;  // elements x and w start past an aligned address
};

void check_direct(DType dtype, const GemvCase& c) {
  TensorData x = random_tensor(dtype, {c.m, c.k}), w = random_tensor(dtype, {c.n, c.k});
  TensorData bias = random_tensor(dtype, {c.n});
  TensorData xb, wb, bb;
  void* xd = device_copy(x, c.offset, xb);
  void* wd = device_copy(w, c.offset, wb);
  void* bd = c.bias ? device_copy(bias, 0, bb) : nullptr;
  TensorData y = TensorData::empty(dtype, {c.m, c.n}, Device::cuda());
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  cuda::dense_gemv(dtype, xd, wd, bd, y.data(), c.m, c.n, c.k, true, cudaStreamPerThread);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  const std::string what = std::string("GEMV ") + dtype_name(dtype) + " m " + std::to_string(c.m) +
                           " n " + std::to_string(c.n) + " k " + std::to_string(c.k) +
                           (c.bias ? " bias" : "") + " offset " + std::to_string(c.offset);
  testing::expect_close(y.to_host(), reference(x, w, c.bias ? &bias : nullptr, c.m, c.n, c.k),
                        testing::accumulation_tolerance(dtype, c.k + 1), what);
}

bool real_gpu() { return cuda_available() && !testing::cuda_tests_on_cpu(); }

TEST(CudaDenseGemv, DirectAgainstReference) {
  LOOM_REQUIRE_CUDA();
  if (!real_gpu()) GTEST_SKIP() << "calls the CUDA kernel directly";
  for (DType dtype : {DType::f16, DType::bf16}) {
    for (int64_t m = 1; m <= 8; ++m)
      for (int64_t n : {1, 3, 37, 129})
        for (int64_t k : {1, 7, 13, 64, 257, 1001, 4096})
          check_direct(dtype, {m, n, k, (m + n) % 2 == 1});
    // Over 8 rows: launched per 8; misaligned x and w take the one-element path.
    check_direct(dtype, {11, 45, 320, true});
    check_direct(dtype, {17, 9, 96});
    check_direct(dtype, {3, 77, 512, false, 1});
    check_direct(dtype, {1, 4099, 2048, true, 3});
    // A long row (many U-step tiles) and enough rows for several waves of blocks.
    check_direct(dtype, {1, 2048, 14336});
    check_direct(dtype, {2, 11008, 512, true});
  }
}

std::shared_ptr<const Kernel> gemv_kernel() {
  for (const auto& kernel : backend_for(Device::cuda()).kernels("matmul"))
    if (kernel->name == cuda::kDenseGemvName) return kernel;
  return nullptr;
}

// The GEMV as the only matmul kernel of an executable: x [.., m, k] W^T, W a placeholder
// [n, k] (transpose_b) or a transposed view of one, with and without a bias.
TEST(CudaDenseGemv, AsOnlyMatmulKernel) {
  LOOM_REQUIRE_CUDA();
  if (!real_gpu()) GTEST_SKIP() << "overrides the CUDA kernel table";
  auto kernel = gemv_kernel();
  ASSERT_TRUE(kernel);
  testing::KernelOverride only(Device::cuda(), "matmul", {kernel});
  for (DType dtype : {DType::f16, DType::bf16})
    for (int variant = 0; variant < 4; ++variant) {
      const bool view = variant & 1, with_bias = variant & 2;
      const int64_t m = 1 + variant * 2, n = 203, k = view ? 96 : 75;
      Graph g;
      Tensor x = g.placeholder("x", {1, m, k}, dtype);
      Tensor w = g.placeholder("w", {n, k}, dtype);
      Tensor y = view ? matmul(x, transpose(w)) : matmul(x, w, false, true);
      TensorData bias_data = random_tensor(dtype, {n});
      if (with_bias) y = y + g.placeholder("bias", {n}, dtype);
      Feeds feeds{{"x", random_tensor(dtype, {1, m, k})}, {"w", random_tensor(dtype, {n, k})}};
      if (with_bias) feeds["bias"] = bias_data;
      CompileOptions options;
      options.device = Device::cuda();
      options.outputs = {y};
      Executable exe = compile(g, options);
      const std::string what = std::string("matmul ") + dtype_name(dtype) + " m " +
                               std::to_string(m) + (view ? " (view of W)" : " (W^T)") +
                               (with_bias ? " + bias" : "");
      for (int run = 0; run < 3; ++run) {
        TensorData got = exe.run(feeds).at(0).to_host();
        if (run == 0) {
          EXPECT_NE(exe.dump().find(cuda::kDenseGemvName), std::string::npos) << exe.dump();
        }
        if (run == 2) {
          EXPECT_TRUE(exe.last_run_stats().replayed_graph) << what;
        }
        std::vector<double> want =
            reference(feeds["x"], feeds["w"], with_bias ? &bias_data : nullptr, m, n, k);
        // A bias added by another node is rounded once more (the matmul's output first).
        testing::Tolerance tol = testing::accumulation_tolerance(dtype, k + 1);
        if (with_bias) tol.rtol *= 2, tol.atol += testing::tolerance_for(dtype).rtol;
        testing::expect_close(got, want, tol, what + " run " + std::to_string(run + 1));
        feeds = testing::shuffled(feeds);
        if (with_bias) bias_data = feeds["bias"];
      }
    }
}

// What the kernel takes: f16/bf16, at most 8 rows, W's bytes [N, K]; the rest is cuBLASLt's.
TEST(CudaDenseGemv, Supports) {
  LOOM_REQUIRE_CUDA();
  if (!real_gpu()) GTEST_SKIP() << "asks the CUDA kernel";
  auto ask = [](DType dtype, Extents a, Extents b, bool transpose_b) {
    Graph g;
    Tensor x = g.placeholder("a", to_shape(a), dtype);
    Tensor w = g.placeholder("b", to_shape(b), dtype);
    Tensor y = matmul(x, w, false, transpose_b);
    std::vector<TensorView> in = {{nullptr, dtype, a, contiguous_strides(a)},
                                  {nullptr, dtype, b, contiguous_strides(b)}};
    return cuda::dense_gemv_supports(*y.node(), in);
  };
  EXPECT_TRUE(ask(DType::bf16, {1, 4096}, {14336, 4096}, true));
  EXPECT_TRUE(ask(DType::f16, {8, 33}, {5, 33}, true));
  EXPECT_TRUE(ask(DType::f16, {2, 4, 33}, {5, 33}, true));
  EXPECT_FALSE(ask(DType::f16, {9, 33}, {5, 33}, true));           // more than 8 rows
  EXPECT_FALSE(ask(DType::f16, {3, 3, 33}, {5, 33}, true));        // 9 rows over the batch
  EXPECT_FALSE(ask(DType::bf16, {1, 4096}, {4096, 4096}, false));  // W stored [K, N]
  EXPECT_FALSE(ask(DType::f32, {1, 64}, {32, 64}, true));
}

}  // namespace
}  // namespace loom
