// scaled_dot_product_attention on CUDA against the CPU kernel (itself checked against a naive
// reference in tests/ops/attention_test.cpp): the split-kv decode kernel over head dims, group
// ratios, lengths that split into many chunks, masks, run-time kv_len and windows; the tiled
// and tensor-core prefill kernels; a KV-cache decode loop whose steps are CUDA-graph replays;
// and the same over an int8 KV cache (i8 K/V + f32 scales per key, written by quantize_kv).
#include <algorithm>
#include <cmath>
#include <string>

#include "core/kernel_test_hooks.h"
#include "cuda/cuda_test_util.h"
#include "ops/attention_reference.h"

namespace loom {
namespace {

using testing::random_tensor;

// Both sides accumulate in f32 and round once to the dtype: within about one unit in the
// last place of the dtype, elementwise.
void expect_elementwise(const TensorData& got, const TensorData& want, DType dtype,
                        const std::string& what) {
  double atol = 1e-5, rtol = 1e-4;
  if (dtype == DType::f16) atol = 1e-3, rtol = 2e-3;
  if (dtype == DType::bf16) atol = rtol = 8e-3;
  auto g = got.to_floats(), w = want.to_floats();
  ASSERT_EQ(g.size(), w.size()) << what;
  int reported = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    double err = std::abs(double(g[i]) - double(w[i]));
    if (!(err <= atol + rtol * std::abs(double(w[i]))) && reported++ < 5)
      ADD_FAILURE() << what << ": element " << i << " is " << g[i] << ", CPU gives " << w[i];
  }
}

struct Case {
  int64_t batch = 1, q_heads = 1, kv_heads = 1, q_len = 1, kv_cap = 1, dim = 64;
  DType dtype = DType::f16;
  bool int8_kv = false;  // k and v i8 codes with f32 scales per key
  bool causal = false;
  int64_t window = 0;
  int mask = 0;  // 0 none, 1 bool [B, 1, Sq, Skv], 2 float [Sq, Skv]
  std::vector<int32_t> kv_len;
  const char* kernel = nullptr;  // null: the decode kernel that serves the case (below)

  std::string str() const {
    std::string s = "B" + std::to_string(batch) + " Hq" + std::to_string(q_heads) + " Hkv" +
                    std::to_string(kv_heads) + " Sq" + std::to_string(q_len) + " Skv" +
                    std::to_string(kv_cap) + " D" + std::to_string(dim) + " " + dtype_name(dtype) +
                    (int8_kv ? " int8-kv" : "") + (causal ? " causal" : "") + " mask" +
                    std::to_string(mask) + " window" + std::to_string(window);
    for (int32_t n : kv_len) s += " kv_len " + std::to_string(n);
    return s;
  }
};

// The register-resident decode kernel takes decode cases without a mask or int8 K/V whose
// row is 8, 16 or 32 16-byte vectors and whose kv heads have at most 8 query rows; split_kv
// takes the other decode cases.
const char* decode_kernel_for(const Case& c) {
  const int64_t vec = c.dtype == DType::f32 ? 4 : 8, lanes = c.dim / vec;
  const bool lanes_ok = c.dim % vec == 0 && (lanes == 8 || lanes == 16 || lanes == 32);
  const bool rows_ok = c.q_heads / c.kv_heads * c.q_len <= 8;
  return lanes_ok && rows_ok && c.mask == 0 && !c.int8_kv ? "cuda.attention.decode"
                                                          : "cuda.attention.split_kv";
}

void check(Case c) {
  if (!c.kernel) c.kernel = decode_kernel_for(c);
  Graph g;
  Tensor q = g.placeholder("q", {c.batch, c.q_heads, c.q_len, c.dim}, c.dtype);
  const DType kv_dtype = c.int8_kv ? DType::i8 : c.dtype;
  const Extents kv_shape{c.batch, c.kv_heads, c.kv_cap, c.dim};
  Tensor k = g.placeholder("k", to_shape(kv_shape), kv_dtype);
  Tensor v = g.placeholder("v", to_shape(kv_shape), kv_dtype);
  Feeds feeds{{"q", random_tensor(c.dtype, {c.batch, c.q_heads, c.q_len, c.dim})},
              {"k", random_tensor(kv_dtype, kv_shape, -127.f, 127.f)},
              {"v", random_tensor(kv_dtype, kv_shape, -127.f, 127.f)}};
  if (!c.int8_kv) {
    feeds["k"] = random_tensor(kv_dtype, kv_shape);
    feeds["v"] = random_tensor(kv_dtype, kv_shape);
  }
  AttentionOptions options;
  if (c.int8_kv) {
    const Extents scale_shape{c.batch, c.kv_heads, c.kv_cap};
    options.k_scale = g.placeholder("k_scale", to_shape(scale_shape));
    options.v_scale = g.placeholder("v_scale", to_shape(scale_shape));
    feeds["k_scale"] = random_tensor(DType::f32, scale_shape, 0.f, 0.01f);
    feeds["v_scale"] = random_tensor(DType::f32, scale_shape, 0.f, 0.01f);
  }
  options.causal = c.causal;
  options.window = c.window;
  if (c.mask == 1) {
    Extents shape{c.batch, 1, c.q_len, c.kv_cap};
    auto r = random_tensor(DType::f32, shape, 0.f, 1.f).to_floats();
    std::vector<bool> bits(r.size());
    for (size_t i = 0; i < r.size(); ++i) bits[i] = r[i] > 0.2f;
    options.mask = g.placeholder("mask", to_shape(shape), DType::boolean);
    feeds["mask"] = TensorData::from_vector<bool>(bits, shape);
  } else if (c.mask == 2) {
    Extents shape{c.q_len, c.kv_cap};
    options.mask = g.placeholder("mask", to_shape(shape), c.dtype);
    feeds["mask"] = random_tensor(c.dtype, shape, -3.f, 3.f);
  }
  if (!c.kv_len.empty()) {
    Extents shape{int64_t(c.kv_len.size())};
    options.kv_len = g.placeholder("kv_len", to_shape(shape), DType::i32);
    feeds["kv_len"] = TensorData::from_vector<int32_t>(c.kv_len, shape);
  }
  Tensor y = scaled_dot_product_attention(q, k, v, options);
  auto want = testing::run_on(g, {y}, feeds, Device::cpu(), {}).at(0);
  CompileOptions co;
  co.device = testing::gpu();
  co.outputs = {y};
  // Each kernel is tested, not only the one the tactic selector would time fastest: the case
  // names the kernel, and the op's kernel table holds only that one while compiling.
  std::unique_ptr<testing::KernelOverride> only;
  if (!testing::cuda_tests_on_cpu()) {
    std::vector<std::shared_ptr<const Kernel>> chosen;
    for (const auto& kernel : backend_for(co.device).kernels("scaled_dot_product_attention"))
      if (kernel->name == c.kernel) chosen.push_back(kernel);
    ASSERT_EQ(chosen.size(), 1u) << c.kernel;
    only = std::make_unique<testing::KernelOverride>(co.device, "scaled_dot_product_attention",
                                                     chosen);
  }
  Executable exe = compile(g, co);
  // Three runs: eager, captured, replayed.
  for (int run = 0; run < 3; ++run) {
    auto got = exe.run(feeds).at(0).to_host();
    if (run == 0 && !testing::cuda_tests_on_cpu()) {
      EXPECT_NE(exe.dump().find(c.kernel), std::string::npos) << exe.dump();
    }
    expect_elementwise(got, want, c.dtype, c.str() + " run " + std::to_string(run));
  }
}

TEST(CudaAttention, DecodeHeadDimsAndGroups) {
  LOOM_REQUIRE_CUDA();
  for (DType dtype : {DType::f16, DType::bf16, DType::f32})
    for (int64_t dim : {64, 80, 96, 128, 256, 20, 3})
      for (int64_t ratio : {1, 4, 8}) {
        Case c;
        c.dtype = dtype;
        c.batch = 2;
        c.kv_heads = 2;
        c.q_heads = 2 * ratio;
        c.dim = dim;
        c.kv_cap = 1037;  // several chunks, a partial last tile
        check(c);
      }
}

TEST(CudaAttention, DecodeLengthsAndOptions) {
  LOOM_REQUIRE_CUDA();
  for (int64_t q_len : {1, 2, 8})
    for (int64_t kv_cap : {1, 9, 300, 4099}) {
      if (kv_cap < q_len) continue;
      for (int variant = 0; variant < 4; ++variant) {
        Case c;
        c.batch = 3;
        c.q_heads = 8;
        c.kv_heads = 1;
        c.q_len = q_len;
        c.kv_cap = kv_cap;
        c.dim = 128;
        c.dtype = variant % 2 ? DType::bf16 : DType::f16;
        c.causal = variant != 0;
        if (variant == 1)
          c.kv_len = {int32_t(kv_cap), int32_t(kv_cap / 2), int32_t(std::min<int64_t>(3, kv_cap))};
        if (variant == 2) c.mask = 1, c.window = std::max<int64_t>(1, kv_cap / 3);
        if (variant == 3) c.mask = 2, c.kv_len = {int32_t(kv_cap - kv_cap / 4)};
        check(c);
      }
    }
}

// The register-resident decode kernel over query rows per kv head (group x Sq up to 8),
// causal or not, windows, per-sequence kv_len, short and split caches.
TEST(CudaAttention, DecodeKernelRowsWindowsAndLengths) {
  LOOM_REQUIRE_CUDA();
  for (DType dtype : {DType::bf16, DType::f32})
    for (int64_t q_len : {1, 2, 4})
      for (int64_t kv_cap : {1, 5, 33, 1000, 5000}) {
        if (kv_cap < q_len) continue;
        for (int variant = 0; variant < 4; ++variant) {
          Case c;
          c.dtype = dtype;
          c.batch = 2;
          c.q_heads = 6;
          c.kv_heads = 3;
          c.q_len = q_len;
          c.kv_cap = kv_cap;
          c.dim = variant % 2 ? 128 : 64;
          c.causal = variant >= 1;
          if (variant >= 2) c.kv_len = {int32_t(kv_cap), int32_t((kv_cap + q_len) / 2)};
          if (variant == 3) c.window = std::max<int64_t>(1, kv_cap / 3);
          c.kernel = "cuda.attention.decode";
          check(c);
        }
      }
}

// An int8 KV cache read directly by both kernels, against the CPU kernel (which reads it the
// same way; tests/ops/attention_int8_kv_test.cpp checks that against a reference).
TEST(CudaAttention, Int8KvCache) {
  LOOM_REQUIRE_CUDA();
  for (DType dtype : {DType::f16, DType::bf16, DType::f32})
    for (int64_t dim : {64, 128, 80, 20})
      for (int64_t ratio : {1, 4})
        for (int64_t q_len : {1, 5, 77}) {
          Case c;
          c.int8_kv = true;
          c.dtype = dtype;
          c.batch = 2;
          c.kv_heads = 2;
          c.q_heads = 2 * ratio;
          c.dim = dim;
          c.q_len = q_len;
          c.kv_cap = q_len == 77 ? 300 : 1037;
          c.causal = q_len != 5;
          if (q_len == 5) c.kv_len = {700, 3};
          if (dim == 80) c.mask = 1, c.window = 100;
          if (q_len == 77) c.kernel = "cuda.attention.tiled";
          check(c);
        }
}

TEST(CudaAttention, Prefill) {
  LOOM_REQUIRE_CUDA();
  for (DType dtype : {DType::f16, DType::bf16, DType::f32})
    for (int variant = 0; variant < 4; ++variant) {
      Case c;
      c.dtype = dtype;
      c.batch = 2;
      c.q_heads = 8;
      c.kv_heads = variant == 3 ? 8 : 2;
      c.q_len = 301;
      c.kv_cap = variant == 1 ? 517 : 301;  // chunked prefill against a longer cache
      c.dim = variant == 2 ? 80 : 128;
      c.causal = variant != 3;
      if (variant == 1) c.kv_len = {400, 517};
      if (variant == 2) c.window = 64, c.mask = 1;
      if (variant == 3) c.mask = 2;
      c.kernel = "cuda.attention.tiled";
      check(c);
    }
}

// The tensor-core prefill kernel (f16/bf16, D 64 and 128, no mask): GQA 1/4/8, odd lengths and
// partial 64-row blocks, chunked prefill against a longer cache with per-batch kv_len, a
// window, a kv_len shorter than the queries (the first rows see nothing: zeros). It rounds P
// to the dtype before P v, which moves each output by at most u * max|v| (u = 2^-11 for f16,
// 2^-8 for bf16; |v| <= 1 here): inside the same elementwise tolerances.
TEST(CudaAttention, PrefillOnTensorCores) {
  LOOM_REQUIRE_CUDA();
  for (DType dtype : {DType::f16, DType::bf16})
    for (int variant = 0; variant < 6; ++variant) {
      Case c;
      c.dtype = dtype;
      c.kernel = "cuda.attention.mma";
      c.causal = variant != 2;
      switch (variant) {
        case 0:
          c.batch = 2, c.q_heads = 8, c.kv_heads = 2, c.q_len = c.kv_cap = 301, c.dim = 128;
          break;
        case 1:  // chunked prefill: the queries are the last of 400 / 517 keys
          c.batch = 2, c.q_heads = 8, c.kv_heads = 2, c.q_len = 301, c.kv_cap = 517, c.dim = 64;
          c.kv_len = {400, 517};
          break;
        case 2:
          c.q_heads = c.kv_heads = 4, c.q_len = c.kv_cap = 130, c.dim = 64;
          break;
        case 3:
          c.q_heads = 8, c.kv_heads = 1, c.q_len = 97, c.kv_cap = 200, c.dim = 128, c.window = 50;
          break;
        case 4:
          c.q_heads = c.kv_heads = 2, c.q_len = c.kv_cap = 9, c.dim = 64;
          break;
        case 5:
          c.q_heads = 3, c.kv_heads = 1, c.q_len = 20, c.kv_cap = 64, c.dim = 64, c.kv_len = {10};
          break;
      }
      check(c);
    }
}

// A decomposed attention as imported models write it (kᵀ by transpose, a scale, softmax, the
// GQA repeat of k and v) compiled for the GPU: the fuse_attention pass makes it one
// scaled_dot_product_attention node (f16, 100 queries: the tensor-core kernel may take it),
// against the unfused graph on the CPU (elementwise tolerance of the f16 cases above).
TEST(CudaAttention, DecomposedGraphFusesOnTheGpu) {
  LOOM_REQUIRE_CUDA();
  const int64_t B = 2, Hq = 8, Hkv = 2, S = 100, D = 64;
  const DType dt = DType::f16;
  Graph g;
  Tensor q = g.placeholder("q", {B, Hq, S, D}, dt);
  Tensor k = g.placeholder("k", {B, Hkv, S, D}, dt);
  Tensor v = g.placeholder("v", {B, Hkv, S, D}, dt);
  auto repeat = [&](const Tensor& x) {
    Tensor wide = broadcast_to(reshape(x, {B, Hkv, 1, S, D}), {B, Hkv, Hq / Hkv, S, D});
    return reshape(wide, {B, Hq, S, D});
  };
  Tensor scores = matmul(q, transpose(repeat(k), {0, 1, 3, 2})) * 0.125;
  Tensor y = matmul(softmax(scores, -1), repeat(v));
  Feeds feeds{{"q", random_tensor(dt, {B, Hq, S, D})},
              {"k", random_tensor(dt, {B, Hkv, S, D})},
              {"v", random_tensor(dt, {B, Hkv, S, D})}};
  CompileOptions unfused;
  unfused.outputs = {y};
  unfused.disabled_passes = {"fuse_attention"};
  TensorData want = compile(g, unfused).run(feeds).at(0);
  CompileOptions on_gpu;
  on_gpu.device = testing::gpu();
  on_gpu.outputs = {y};
  Executable exe = compile(g, on_gpu);
  const std::string dump = exe.dump();
  EXPECT_NE(dump.find("scaled_dot_product_attention"), std::string::npos) << dump;
  EXPECT_EQ(dump.find("softmax"), std::string::npos) << dump;
  for (int run = 0; run < 2; ++run)
    expect_elementwise(exe.run(feeds).at(0).to_host(), want, dt,
                       "fused attention run " + std::to_string(run));
}

// Decode steps with fixed-capacity caches on the GPU, written in place, against the same
// graph on the CPU; every step after the second is a CUDA-graph replay at a new kv_len.
TEST(CudaAttention, KvCacheDecodeReplays) {
  LOOM_REQUIRE_CUDA();
  constexpr int64_t B = 2, Hkv = 2, Hq = 16, C = 300, D = 128;
  const DType dtype = DType::bf16;
  Graph g;
  Tensor k_cache = g.variable("k_cache", TensorData::zeros(dtype, {B, Hkv, C, D}));
  Tensor v_cache = g.variable("v_cache", TensorData::zeros(dtype, {B, Hkv, C, D}));
  Tensor q = g.placeholder("q", {B, Hq, 1, D}, dtype);
  Tensor k_new = g.placeholder("k_new", {B, Hkv, 1, D}, dtype);
  Tensor v_new = g.placeholder("v_new", {B, Hkv, 1, D}, dtype);
  Tensor starts = g.placeholder("starts", {4}, DType::i32);
  Tensor kv_len = g.placeholder("kv_len", {1}, DType::i32);
  Tensor k_all = slice_update(g.read(k_cache), k_new, starts);
  Tensor v_all = slice_update(g.read(v_cache), v_new, starts);
  g.assign(k_cache, k_all);
  g.assign(v_cache, v_all);
  AttentionOptions options;
  options.causal = true;
  options.kv_len = kv_len;
  Tensor y = scaled_dot_product_attention(q, k_all, v_all, options);
  auto make = [&](Device device) {
    CompileOptions co;
    co.device = device;
    co.outputs = {y};
    return compile(g, co);
  };
  Executable cpu = make(Device::cpu()), gpu = make(testing::gpu());
  EXPECT_NE(gpu.dump().find("slice_update_inplace"), std::string::npos) << gpu.dump();
  for (int32_t step = 0; step < 200; ++step) {
    Feeds feeds{{"q", random_tensor(dtype, {B, Hq, 1, D})},
                {"k_new", random_tensor(dtype, {B, Hkv, 1, D})},
                {"v_new", random_tensor(dtype, {B, Hkv, 1, D})},
                {"starts", TensorData::from_vector<int32_t>({0, 0, step, 0}, {4})},
                {"kv_len", TensorData::from_vector<int32_t>({step + 1}, {1})}};
    auto want = cpu.run(feeds).at(0);
    auto got = gpu.run(feeds).at(0).to_host();
    expect_elementwise(got, want, dtype, "step " + std::to_string(step));
    if (HasFailure()) break;
  }
}

// An int8 KV cache in variables on the GPU: each step quantizes its k/v with quantize_kv and
// writes codes and scales in place; against the same graph on the CPU, the caches compared
// bit for bit (both quantize in IEEE f32), every step after the second a CUDA-graph replay.
TEST(CudaAttention, Int8KvCacheDecodeReplays) {
  LOOM_REQUIRE_CUDA();
  constexpr int64_t B = 2, Hkv = 2, Hq = 16, C = 300, D = 128, kSteps = 200;
  for (DType dtype : {DType::f16, DType::f32}) {
    Graph g;
    Tensor y = testing::int8_kv_decode_step(g, B, Hq, Hkv, C, D, dtype);
    auto make = [&](Device device) {
      CompileOptions co;
      co.device = device;
      co.outputs = {y};
      return compile(g, co);
    };
    Executable cpu = make(Device::cpu()), gpu = make(testing::gpu());
    EXPECT_NE(gpu.dump().find("slice_update_inplace"), std::string::npos) << gpu.dump();
    if (!testing::cuda_tests_on_cpu()) {
      EXPECT_NE(gpu.dump().find("cuda.attention.split_kv"), std::string::npos) << gpu.dump();
      EXPECT_NE(gpu.dump().find("cuda.quantize_kv"), std::string::npos) << gpu.dump();
    }
    for (int32_t step = 0; step < kSteps; ++step) {
      Feeds feeds = testing::int8_kv_decode_feeds(
          random_tensor(dtype, {B, Hq, 1, D}), random_tensor(dtype, {B, Hkv, 1, D}, -2.f, 2.f),
          random_tensor(dtype, {B, Hkv, 1, D}, -2.f, 2.f), step);
      auto want = cpu.run(feeds).at(0);
      auto got = gpu.run(feeds).at(0).to_host();
      const std::string what = std::string(dtype_name(dtype)) + " step " + std::to_string(step);
      expect_elementwise(got, want, dtype, what);
      for (const char* name : {"k_cache", "v_cache", "k_scale", "v_scale"})
        EXPECT_EQ(gpu.variables().get(name).to_host().to_floats(),
                  cpu.variables().get(name).to_host().to_floats())
            << what << " " << name;
      if (HasFailure()) break;
    }
  }
}

}  // namespace
}  // namespace loom
