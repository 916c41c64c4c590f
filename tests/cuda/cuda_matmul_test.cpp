// matmul on CUDA (cuBLASLt for f32/f16/bf16, a plain kernel for i32) against the CPU
// backend: odd sizes, M = 1 decode shapes, broadcast batches, both transpose flags.
#include <algorithm>
#include <cmath>

#include "cuda/cuda_test_util.h"

namespace loom {
namespace {

using testing::expect_gpu_matches_cpu;
using testing::random_tensor;

struct MatmulCase {
  Extents a, b;
  bool transpose_a = false, transpose_b = false;
};

const std::vector<MatmulCase> kCases = {
    {{7, 13}, {13, 5}},
    {{1, 4096}, {4096, 512}},
    {{1, 1024}, {768, 1024}, false, true},
    {{2, 1, 3, 4}, {5, 4, 6}},
    {{3, 64, 32}, {32, 48}},
    {{4, 8, 16}, {4, 8, 16}, false, true},
    {{4, 16, 8}, {4, 16, 8}, true, false},
    {{2, 16, 9}, {9, 16}, true, true},
    {{1, 5, 7}, {3, 7, 2}},
    {{128, 256}, {256, 384}},
    {{3, 1, 17, 11}, {1, 4, 11, 19}},
};

TEST(CudaMatmul, FloatAgainstCpu) {
  LOOM_REQUIRE_CUDA();
  for (DType dtype : testing::kFloatDTypes)
    for (const auto& c : kCases) {
      Graph g;
      Tensor a = g.placeholder("a", to_shape(c.a), dtype);
      Tensor b = g.placeholder("b", to_shape(c.b), dtype);
      // Sums of k products (|a b| <= 1) in f32, in a different order on each device.
      const int64_t k = c.transpose_a ? c.a[c.a.size() - 2] : c.a.back();
      expect_gpu_matches_cpu(g, {matmul(a, b, c.transpose_a, c.transpose_b)},
                             {{"a", random_tensor(dtype, c.a)}, {"b", random_tensor(dtype, c.b)}},
                             std::string("matmul ") + dtype_name(dtype) + " " + to_string(c.a) +
                                 (c.transpose_a ? "^T" : "") + " x " + to_string(c.b) +
                                 (c.transpose_b ? "^T" : ""),
                             testing::accumulation_tolerance(dtype, k));
    }
}

TEST(CudaMatmul, Int32AgainstCpu) {
  LOOM_REQUIRE_CUDA();
  for (const auto& c : kCases) {
    if (numel(c.a) * numel(c.b) > (int64_t(1) << 26)) continue;  // the plain kernel is slow
    Graph g;
    Tensor a = g.placeholder("a", to_shape(c.a), DType::i32);
    Tensor b = g.placeholder("b", to_shape(c.b), DType::i32);
    expect_gpu_matches_cpu(g, {matmul(a, b, c.transpose_a, c.transpose_b)},
                           {{"a", random_tensor(DType::i32, c.a, -20, 20)},
                            {"b", random_tensor(DType::i32, c.b, -20, 20)}},
                           "matmul i32 " + to_string(c.a) + " x " + to_string(c.b));
  }
}

TEST(CudaMatmul, EmptyInnerDimGivesZeros) {
  LOOM_REQUIRE_CUDA();
  Graph g;
  Tensor a = g.placeholder("a", {3, 0}, DType::f16);
  Tensor b = g.placeholder("b", {0, 4}, DType::f16);
  expect_gpu_matches_cpu(
      g, {matmul(a, b)},
      {{"a", TensorData::zeros(DType::f16, {3, 0})}, {"b", TensorData::zeros(DType::f16, {0, 4})}},
      "matmul k = 0");
}

TEST(CudaMatmul, SymbolicRowsReplanPerBinding) {
  LOOM_REQUIRE_CUDA();
  // One executable, several sequence lengths: the per-node cuBLASLt plan follows the shape.
  Graph g;
  Tensor x = g.placeholder("x", {"seq", 256}, DType::bf16);
  Tensor w = g.placeholder("w", {256, 64}, DType::bf16);
  Tensor y = matmul(x, w);
  CompileOptions cpu_opts, gpu_opts;
  cpu_opts.outputs = gpu_opts.outputs = {y};
  gpu_opts.device = testing::gpu();
  Executable cpu_exe = compile(g, cpu_opts), gpu_exe = compile(g, gpu_opts);
  TensorData wd = random_tensor(DType::bf16, {256, 64});
  for (int64_t seq : {1, 17, 128, 17, 1}) {
    Feeds feeds{{"x", random_tensor(DType::bf16, {seq, 256})}, {"w", wd}};
    TensorData want = cpu_exe.run(feeds).at(0);
    TensorData got = gpu_exe.run(feeds).at(0).to_host();
    // Sums of 256 products in f32, in a different order on each device.
    testing::expect_close(got, testing::to_doubles(want),
                          testing::accumulation_tolerance(DType::bf16, 256),
                          "seq " + std::to_string(seq));
  }
}

}  // namespace
}  // namespace loom

namespace loom {

// add(matmul(a, b), bias) becomes one cuBLASLt call with the bias epilogue; the result
// matches the CPU's unfused matmul then add, for decode and prefill shapes, with batches.
TEST(CudaMatmul, BiasEpilogueAgainstCpu) {
  LOOM_REQUIRE_CUDA();
  struct Case {
    Extents a, b;
    bool transpose_b;
  };
  const Case cases[] = {{{1, 64}, {64, 96}, false},
                        {{33, 40}, {24, 40}, true},
                        {{2, 3, 7, 16}, {16, 8}, false},
                        {{2, 5, 16}, {2, 16, 12}, false}};
  for (DType dtype : testing::kFloatDTypes) {
    for (const auto& c : cases) {
      Graph g;
      Tensor a = g.placeholder("a", to_shape(c.a), dtype);
      Tensor b = g.placeholder("b", to_shape(c.b), dtype);
      int64_t n = c.transpose_b ? c.b[c.b.size() - 2] : c.b.back();
      Tensor bias = g.placeholder("bias", {n}, dtype);
      Tensor product = matmul(a, b, false, c.transpose_b);
      Tensor y = product + bias;
      Feeds feeds = {{"a", testing::random_tensor(dtype, c.a)},
                     {"b", testing::random_tensor(dtype, c.b)},
                     {"bias", testing::random_tensor(dtype, {n})}};
      CompileOptions options;
      options.device = testing::gpu();
      options.outputs = {y};
      Executable fused = compile(g, options);
      EXPECT_EQ(fused.dump().find("= add"), std::string::npos) << fused.dump();
      auto got = fused.run(feeds)[0].to_host();
      auto cpu = testing::run_on(g, {y, product}, feeds, Device::cpu(), {"fuse_matmul_bias"});
      const TensorData& want = cpu[0];
      // Sums of k products plus the bias in f32; the fused epilogue adds the bias before
      // rounding to the dtype where the CPU rounds the product first. That extra rounding is
      // half an ulp of the product, which can be far larger than the sum when the bias
      // cancels it: so an absolute term of one ulp of the largest product.
      const int64_t k = c.a.back();
      testing::Tolerance tol = testing::accumulation_tolerance(dtype, k + 1, 1.0);
      tol.rtol += testing::epsilon_of(dtype);
      double largest_product = 0;
      for (double v : testing::to_doubles(cpu[1]))
        largest_product = std::max(largest_product, std::fabs(v));
      tol.atol += testing::epsilon_of(dtype) * largest_product;
      testing::expect_close(got, testing::to_doubles(want), tol,
                            std::string(dtype_name(dtype)) + " " + to_string(c.a));
    }
  }
}

}  // namespace loom
