// Generated CUDA kernels of fused elementwise groups. The first tests need no GPU (NVRTC
// compiles for sm_90 anywhere): every op and dtype the generator writes compiles, a failed
// compile is a loom::Error carrying NVRTC's log and the source's location, and a second
// compile of the same source reads the disk cache. The others run on the GPU: fused graphs
// give the unfused graph's bits where every step is exactly rounded arithmetic (the steps
// round to the dtype as the unfused kernels do), the CPU's values within the dtype's
// tolerance where math functions differ between the CPU and CUDA, under CUDA-graph replay;
// and a second executable (as a second process would) finds its kernel on disk.
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <random>

#include "backends/cuda/fused_source.h"
#include "backends/cuda/kernel_cache.h"
#include "cuda_test_util.h"
#include "ops/fused_expression.h"

namespace loom {
namespace {

using testing::gpu;

// A fresh directory under the system's temporary directory, removed at the end.
struct TempDir {
  std::filesystem::path path;
  TempDir() {
    std::random_device rd;
    path = std::filesystem::temp_directory_path() /
           ("loom_kernel_cache_test_" + std::to_string(getpid()) + "_" + std::to_string(rd()));
    std::filesystem::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

// Every op the generator knows on dtype `d` (those the dtype allows), then a cast to every
// dtype, all returned.
std::string every_op_expression(DType d) {
  const std::string n = dtype_name(d);
  const bool f = is_float(d);
  std::vector<std::string> steps = {n + " = add(x0, x1)",
                                    n + " = sub(t0, x1)",
                                    n + " = mul(t1, 3:" + n + ")",
                                    n + " = div(t2, x1)",
                                    n + " = pow(t3, 2:" + n + ")",
                                    n + " = maximum(t4, x0)",
                                    n + " = minimum(t5, x2)",
                                    "bool = less(t6, x1)",
                                    "bool = greater(t6, x1)",
                                    "bool = equal(t7, t8)",
                                    n + " = where(t9, t6, x0)",
                                    n + " = neg(t10)",
                                    n + " = abs(t11)",
                                    n + " = relu(t12)"};
  if (f)
    for (const char* op : {"exp", "log", "sqrt", "rsqrt", "sin", "cos", "tanh", "sigmoid", "silu",
                           "gelu", "gelu_tanh"})
      steps.push_back(n + " = " + op + "(t" + std::to_string(steps.size() - 1) + ")");
  const size_t last = steps.size() - 1;
  std::string returned;
  for (DType to : {DType::f32, DType::f16, DType::bf16, DType::i8, DType::u8, DType::i32,
                   DType::i64, DType::boolean}) {
    steps.push_back(std::string(dtype_name(to)) + " = cast(t" + std::to_string(last) + ")");
    returned += (returned.empty() ? "t" : ", t") + std::to_string(steps.size() - 1);
  }
  std::string text;
  for (size_t i = 0; i < steps.size(); ++i) text += "t" + std::to_string(i) + ":" + steps[i] + "; ";
  return text + "return " + returned;
}

TEST(CudaFusedSource, EveryOpAndDtypeCompiles) {
  for (DType d :
       {DType::f32, DType::f16, DType::bf16, DType::i8, DType::u8, DType::i32, DType::i64}) {
    const ops::FusedExpression e = ops::FusedExpression::parse(every_op_expression(d));
    cuda::FusedKernelShape shape{
        {d, d, d},
        {cuda::FusedAccess::same, cuda::FusedAccess::scalar, cuda::FusedAccess::broadcast},
        3};
    const std::string source = cuda::fused_kernel_source(e, shape);
    EXPECT_NO_THROW({
      const std::string image = cuda::compile_kernel_image(source, 90, "");
      EXPECT_GT(image.size(), 0u);
    }) << dtype_name(d)
       << "\n"
       << source;
  }
}

TEST(CudaFusedSource, BoolInputsAndLiteralsCompile) {
  const ops::FusedExpression e = ops::FusedExpression::parse(
      "t0:bool = equal(x0, true:bool); t1:i64 = where(t0, x1, -9223372036854775808:i64); "
      "t2:f32 = cast(t1); t3:f32 = where(x0, t2, nan:f32); t4:f32 = maximum(t3, -inf:f32); "
      "return t4, t0");
  cuda::FusedKernelShape shape{
      {DType::boolean, DType::i64}, {cuda::FusedAccess::broadcast, cuda::FusedAccess::same}, 2};
  EXPECT_NO_THROW(cuda::compile_kernel_image(cuda::fused_kernel_source(e, shape), 90, ""));
}

TEST(CudaKernelCache, NvrtcFailureCarriesTheLog) {
  TempDir dir;
  std::string message;
  const ErrorKind kind = testing::error_kind(
      [&] {
        cuda::compile_kernel_image(
            "extern \"C\" __global__ void k(float* p) { p[0] = no_such_function(); }", 90,
            dir.path.string());
      },
      &message);
  EXPECT_EQ(kind, ErrorKind::device);
  EXPECT_NE(message.find("no_such_function"), std::string::npos) << message;
  const size_t at = message.find("source in ");
  ASSERT_NE(at, std::string::npos) << message;
  const std::string path = message.substr(at + 10, message.find(';', at) - at - 10);
  EXPECT_TRUE(std::filesystem::exists(path)) << path;
}

TEST(CudaKernelCache, SecondCompileReadsTheDisk) {
  TempDir dir;
  const std::string source = "extern \"C\" __global__ void k(float* p) { p[threadIdx.x] *= 2.f; }";
  const auto before = cuda::kernel_cache_stats();
  const std::string first = cuda::compile_kernel_image(source, 90, dir.path.string());
  const auto mid = cuda::kernel_cache_stats();
  EXPECT_EQ(mid.compiled, before.compiled + 1);
  const std::string second = cuda::compile_kernel_image(source, 90, dir.path.string());
  const auto after = cuda::kernel_cache_stats();
  EXPECT_EQ(after.compiled, mid.compiled);
  EXPECT_EQ(after.disk_hits, mid.disk_hits + 1);
  EXPECT_EQ(first, second);
  // Another arch is another entry; a damaged entry is a miss, not an error.
  cuda::compile_kernel_image(source, 80, dir.path.string());
  EXPECT_EQ(cuda::kernel_cache_stats().compiled, after.compiled + 1);
  for (const auto& entry : std::filesystem::directory_iterator(dir.path))
    std::filesystem::resize_file(entry.path(), 10);
  EXPECT_EQ(cuda::compile_kernel_image(source, 90, dir.path.string()), first);
  EXPECT_EQ(cuda::kernel_cache_stats().compiled, after.compiled + 2);
}

TEST(CudaKernelCache, DirectoryFromOptionEnvironmentOrDefault) {
  EXPECT_EQ(cuda::kernel_cache_directory("/some/dir"), "/some/dir");
  EXPECT_EQ(cuda::kernel_cache_directory("off"), "");
  ::setenv("LOOM_KERNEL_CACHE", "/from/env", 1);
  EXPECT_EQ(cuda::kernel_cache_directory(""), "/from/env");
  EXPECT_EQ(cuda::kernel_cache_directory("/option/wins"), "/option/wins");
  ::setenv("LOOM_KERNEL_CACHE", "off", 1);
  EXPECT_EQ(cuda::kernel_cache_directory(""), "");
  ::unsetenv("LOOM_KERNEL_CACHE");
  EXPECT_FALSE(cuda::kernel_cache_directory("").empty());  // HOME is set under CTest
}

// ---- on the GPU ------------------------------------------------------------------------------

void expect_bytes_equal(const TensorData& got, const TensorData& want, const std::string& what) {
  ASSERT_EQ(got.dtype(), want.dtype()) << what;
  ASSERT_EQ(got.shape(), want.shape()) << what;
  const TensorData a = got.to_host().contiguous(), b = want.to_host().contiguous();
  EXPECT_EQ(std::memcmp(a.data(), b.data(), a.nbytes()), 0) << what << ": bytes differ";
}

int fused_nodes(const Executable& e) {
  const std::string d = e.dump();
  int n = 0;
  for (size_t at = d.find(" fused("); at != std::string::npos; at = d.find(" fused(", at + 1)) ++n;
  return n;
}

// Fused and unfused on the GPU, three runs each (the third a replay), bit for bit.
void expect_fused_exact_on_gpu(const Graph& g, const std::vector<Tensor>& outputs,
                               const Feeds& feeds, const std::string& what) {
  CompileOptions on, off;
  on.device = off.device = gpu();
  on.outputs = off.outputs = outputs;
  off.disabled_passes = {"fuse_elementwise"};
  Executable fused = compile(g, on), plain = compile(g, off);
  EXPECT_GE(fused_nodes(fused), 1) << fused.dump();
  Feeds run_feeds = feeds;
  for (int run = 0; run < testing::kRuns; ++run) {
    if (run > 0) run_feeds = testing::shuffled(feeds);
    const auto got = fused.run(run_feeds), want = plain.run(run_feeds);
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i)
      expect_bytes_equal(got[i], want[i],
                         what + " run " + std::to_string(run + 1) + " output " + std::to_string(i));
  }
  if (fused.device().kind == DeviceKind::cuda) {
    EXPECT_TRUE(fused.last_run_stats().replayed_graph) << what;
  }
}

TEST(CudaFused, ArithmeticGroupsAreBitExact) {
  LOOM_REQUIRE_CUDA();
  for (DType dt : testing::kFloatDTypes) {
    Graph g;
    Tensor x = g.placeholder("x", {"batch", 1, 33}, dt);
    Tensor row = g.placeholder("row", {7, 1}, dt);
    Tensor y = g.placeholder("y", {"batch", 7, 33}, dt);
    Tensor t = (x * 0.5 + row) * y - y / (x + 3.0);
    t = where(greater(t, y), t, maximum(y, x) * 2.0);
    Tensor ints = cast(cast(t * 100.0, DType::i32) * g.constant(int64_t(7), DType::i32), dt);
    Tensor other = cast(cast(t, dt == DType::f32 ? DType::bf16 : DType::f32), dt) - relu(y);
    for (int64_t batch : {1, 3, 1000}) {
      Feeds feeds{{"x", testing::random_tensor(dt, {batch, 1, 33}, -2, 2)},
                  {"row", testing::random_tensor(dt, {7, 1}, -2, 2)},
                  {"y", testing::random_tensor(dt, {batch, 7, 33}, -2, 2)}};
      expect_fused_exact_on_gpu(g, {t, ints, other}, feeds,
                                std::string(dtype_name(dt)) + " batch " + std::to_string(batch));
    }
  }
}

TEST(CudaFused, IntegerAndBoolGroupsAreBitExact) {
  LOOM_REQUIRE_CUDA();
  Graph g;
  Tensor a = g.placeholder("a", {500}, DType::i32);
  Tensor b = g.placeholder("b", {500}, DType::i32);
  Tensor q = div(a * g.constant(int64_t(65537), DType::i32), b) - abs(b);
  Tensor flag = equal(less(a, b), greater(q, g.constant(int64_t(0), DType::i32)));
  Tensor small = cast(q, DType::i8) + cast(cast(flag, DType::u8), DType::i8);
  Feeds feeds{{"a", testing::random_tensor(DType::i32, {500}, -100000, 100000)},
              {"b", testing::random_tensor(DType::i32, {500}, -3, 3)}};  // zeros too
  expect_fused_exact_on_gpu(g, {q, flag, small}, feeds, "i32");
}

TEST(CudaFused, MathGroupsMatchTheCpu) {
  LOOM_REQUIRE_CUDA();
  for (DType dt : testing::kFloatDTypes) {
    Graph g;
    Tensor x = g.placeholder("x", {"batch", 65}, dt);
    Tensor y = g.placeholder("y", {65}, dt);
    // Every intermediate stays within [-4, 4] for inputs in [-2, 2].
    Tensor t = tanh(exp(x * 0.5) - y) + sigmoid(x) * silu(y) * 0.25;
    t = gelu(t, GeluApproximation::tanh) + gelu(x) * 0.5 - rsqrt(abs(y) + 1.0) * cos(x) + sin(y);
    for (int64_t batch : {1, 4, 513}) {
      Feeds feeds{{"x", testing::random_tensor(dt, {batch, 65}, -2, 2)},
                  {"y", testing::random_tensor(dt, {65}, -2, 2)}};
      // CUDA's and the CPU's math functions differ by an ulp or two of f32. In f32 that passes
      // through about ten steps (allowed 8 times the dtype's default). In f16 and bf16 every
      // step rounds to the dtype, and an intermediate whose f32 values differ by an ulp may
      // round the other way: an ulp of the dtype at the intermediates' magnitude (<= 4),
      // which later steps carry on; allowed four times: 16 eps absolute.
      testing::Tolerance tol = testing::tolerance_for(dt);
      if (dt == DType::f32)
        tol.atol *= 8, tol.rtol *= 8;
      else
        tol.atol = 16 * testing::epsilon_of(dt);
      testing::expect_gpu_matches_cpu(
          g, {t, x * 2.0 + 1.0}, feeds,
          std::string(dtype_name(dt)) + " batch " + std::to_string(batch), tol);
    }
  }
}

TEST(CudaFused, LongChainIsOneLaunchUnderReplay) {
  LOOM_REQUIRE_CUDA();
  Graph g;
  Tensor x = g.placeholder("x", {4096}, DType::f32);
  Tensor t = x;
  for (int i = 0; i < 200; ++i) t = i % 2 ? t * 0.999 : t + 0.001;
  Feeds feeds{{"x", testing::random_tensor(DType::f32, {4096})}};
  expect_fused_exact_on_gpu(g, {t}, feeds, "chain");
  CompileOptions options;
  options.device = gpu();
  options.outputs = {t};
  Executable e = compile(g, options);
  for (int run = 0; run < 3; ++run) e.run(feeds);
  EXPECT_EQ(e.last_run_stats().kernels, 1u) << e.dump();
}

TEST(CudaFused, SecondExecutableReadsTheDiskCache) {
  LOOM_REQUIRE_CUDA();
  if (gpu().kind != DeviceKind::cuda) GTEST_SKIP() << "the CPU compiles no kernels";
  TempDir dir;
  Graph g;
  Tensor x = g.placeholder("x", {300}, DType::f16);
  // A constant no other test uses, so that no kernel of this source is loaded yet.
  Tensor y = exp(x * 0.123456) - 0.654321;
  CompileOptions options;
  options.device = gpu();
  options.outputs = {y};
  options.kernel_cache = dir.path.string();
  Feeds feeds{{"x", testing::random_tensor(DType::f16, {300})}};
  const auto before = cuda::kernel_cache_stats();
  const TensorData first = compile(g, options).run(feeds)[0].to_host();
  const auto mid = cuda::kernel_cache_stats();
  EXPECT_EQ(mid.compiled, before.compiled + 1);
  cuda::clear_kernel_memory_cache();  // as a new process starts
  const TensorData second = compile(g, options).run(feeds)[0].to_host();
  const auto after = cuda::kernel_cache_stats();
  EXPECT_EQ(after.compiled, mid.compiled);
  EXPECT_EQ(after.disk_hits, mid.disk_hits + 1);
  expect_bytes_equal(second, first, "from the disk cache");
}

}  // namespace
}  // namespace loom
