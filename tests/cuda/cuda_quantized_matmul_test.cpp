// The CUDA GEMV on GGUF blocks against the CPU kernel's float path (same expanded weights,
// f32 sums in another order): |gpu - cpu| <= 2e-5 * sum |w x| per output.
#include <cmath>
#include <cstring>
#include <random>

#include "cuda/cuda_test_util.h"
#include "io/ggml_dequantize.h"
#include "io/ggml_types.h"
#include "loom/half.h"
#include "loom/quant.h"

namespace loom::quant {

namespace {

using io::GgmlType;

std::vector<uint8_t> random_blocks(GgmlType type, int64_t n, int64_t k, std::mt19937& gen) {
  const io::GgmlTypeTraits& t = io::ggml_type_traits(type);
  const int64_t blocks = n * k / 32;
  std::vector<uint8_t> bytes(static_cast<size_t>(blocks * t.bytes_per_block));
  for (auto& b : bytes) b = uint8_t(gen());
  std::uniform_real_distribution<float> scale(-0.05f, 0.05f);
  const bool has_min = type == GgmlType::Q4_1 || type == GgmlType::Q5_1;
  for (int64_t b = 0; b < blocks; ++b)
    for (int off = 0; off <= (has_min ? 2 : 0); off += 2) {
      const uint16_t h = float_to_f16(scale(gen));
      std::memcpy(&bytes[size_t(b * t.bytes_per_block + off)], &h, 2);
    }
  return bytes;
}

void check(GgmlType type, int64_t n, int64_t k, int64_t m, DType x_dtype) {
  SCOPED_TRACE(std::string(io::ggml_type_traits(type).name) + " n=" + std::to_string(n) +
               " k=" + std::to_string(k) + " m=" + std::to_string(m) + " x " + dtype_name(x_dtype));
  std::mt19937 gen(uint32_t(n * 131 + k * 7 + m));
  const std::vector<uint8_t> blocks = random_blocks(type, n, k, gen);
  std::uniform_real_distribution<float> dist(-2.f, 2.f);
  std::vector<float> xv(static_cast<size_t>(m * k));
  for (float& v : xv) v = dist(gen);
  const TensorData x = TensorData::from_floats(xv, x_dtype, {m, k});
  std::vector<float> want(static_cast<size_t>(m * n));
  GemmOptions cpu;
  cpu.quantize_activations = false;
  ggml_matmul(uint32_t(type), blocks.data(), int64_t(blocks.size()), n, k, x.data(), x_dtype, m,
              want.data(), cpu);

  const TensorData w_dev =
      TensorData::from_vector(blocks, {int64_t(blocks.size())}).to(Device::cuda());
  const TensorData x_dev = x.to(Device::cuda());
  const TensorData y_dev = TensorData::zeros(DType::f32, {m, n}, Device::cuda());
  cuda_ggml_gemv(uint32_t(type), w_dev.data(), int64_t(blocks.size()), n, k, x_dev.data(), x_dtype,
                 m, static_cast<float*>(y_dev.data()));
  const std::vector<float> got = y_dev.to_host().to_vector<float>();

  std::vector<float> w(static_cast<size_t>(n * k));
  io::dequantize_ggml(type, std::as_bytes(std::span(blocks)), n * k, w.data());
  const std::vector<float> xr = x.to_floats();
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double magnitude = 0;
      for (int64_t c = 0; c < k; ++c) magnitude += std::fabs(double(w[j * k + c]) * xr[i * k + c]);
      ASSERT_NEAR(got[i * n + j], want[i * n + j], 2e-5 * magnitude + 1e-30)
          << "row " << i << " channel " << j;
    }
}

// A projection of h [rows, 1, k] by a random Q4_1 weight variable `name`, as the attention
// heads [rows, n_heads, 1, head_dim] (the layout the Llama builder gives q, k and v).
Tensor q4_1_heads(Graph& g, const Tensor& h, const std::string& name, int64_t n_heads,
                  int64_t head_dim, std::mt19937& gen) {
  const int64_t rows = h.shape()[0].value(), k = h.shape()[2].value(), n = n_heads * head_dim;
  const std::vector<uint8_t> bytes = random_blocks(GgmlType::Q4_1, n, k, gen);
  Tensor w = g.variable(name, TensorData::from_vector(bytes, {n, int64_t(bytes.size()) / n}));
  Tensor y = quantized_matmul(h, w, "Q4_1", false);
  return transpose(reshape(y, {rows, 1, n_heads, head_dim}), {0, 2, 1, 3});
}

}  // namespace

TEST(CudaQuantizedGemv, MatchesTheCpuKernel) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA GPU";
  for (GgmlType type : {GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1,
                        GgmlType::Q8_0, GgmlType::IQ4_NL})
    for (int64_t m : {1, 3, 8}) {
      check(type, 37, 4096, m, DType::f32);    // few rows, a long K
      check(type, 70, 576, m, DType::f32);     // SmolLM2's K: 18 blocks, not a multiple of 8
      check(type, 1030, 2048, m, DType::f32);  // many rows, N not a multiple of 4
      check(type, 9, 96, m, DType::f32);       // rows not 16-byte aligned, a partial tile
    }
  for (DType dt : {DType::f16, DType::bf16}) {
    check(GgmlType::Q4_0, 64, 1024, 2, dt);
    check(GgmlType::Q8_0, 64, 1024, 5, dt);
  }
}

// The op on the GPU against the same product with the weight expanded in f32 on the CPU
// (dequantize + matmul, the fusion pass off): with int8_activations off the GPU keeps x in f32,
// so only the order of the f32 sums differs (K = 512 terms of |w x| <= 0.8: well inside 1e-4).
// The CPU op itself quantizes x to int8 and is checked against its own bound in tests/quant;
// the GPU's rounding of x to f16 for more rows, in ManyRowsThroughTheExpandedGemmMatchTheCpu.
TEST(CudaQuantizedGemv, OpMatchesCpuForFewAndManyRows) {
  LOOM_REQUIRE_CUDA();
  std::mt19937 gen(7);
  for (int64_t m : {3, 11}) {  // 11 rows: two launches of the GEMV
    const int64_t n = 40, k = 512;
    const std::vector<uint8_t> bytes = random_blocks(GgmlType::Q4_1, n, k, gen);
    Graph g;
    Tensor x = g.placeholder("x", Shape{m, k});
    Tensor blocks = g.constant(TensorData::from_vector(bytes, {n, k / 32 * 20}));
    Tensor fused = quantized_matmul(x, blocks, "Q4_1", /*int8_activations=*/false);
    Tensor expanded = matmul(x, dequantize(blocks, "Q4_1", k), false, true);
    Feeds feeds{{"x", testing::random_tensor(DType::f32, {m, k})}};
    CompileOptions on_cpu;
    on_cpu.outputs = {expanded};
    on_cpu.disabled_passes = {"fuse_quantized_matmul"};
    TensorData want = compile(g, on_cpu).run(feeds).at(0);
    CompileOptions on_gpu;
    on_gpu.device = testing::gpu();
    on_gpu.outputs = {fused};
    Executable gpu = compile(g, on_gpu);
    for (int run = 0; run < 3; ++run)  // eager, captured, replayed
      testing::expect_close(gpu.run(feeds).at(0).to_host(), testing::to_doubles(want),
                            testing::Tolerance{1e-4, 1e-4},
                            "quantized_matmul m=" + std::to_string(m));
    // dequantize on the GPU: the same decoding as the CPU's, element for element.
    CompileOptions expand_on_gpu;
    expand_on_gpu.device = testing::gpu();
    expand_on_gpu.outputs = {dequantize(blocks, "Q4_1", k)};
    CompileOptions expand_on_cpu;
    expand_on_cpu.outputs = expand_on_gpu.outputs;
    testing::expect_close(compile(g, expand_on_gpu).run({}).at(0).to_host(),
                          testing::to_doubles(compile(g, expand_on_cpu).run({}).at(0)),
                          testing::Tolerance{1e-6, 1e-7}, "dequantize Q4_1");
  }
}

// Many rows (prefill): the dequant_gemm tactics (the weight expanded into the workspace, then
// cuBLASLt) come first, so they run when tactics are not timed; timed, the fastest of them and
// the GEMV. Per output the error is bounded by sum_k |w x| times the rounding of the expanded
// weight (none in f32, 2^-11 in f16) and of x (f32 x with int8_activations is rounded to f16
// for the f16 GEMM: 2^-11 more; without it x stays f32) plus K f32 roundings of the sum.
TEST(CudaQuantizedGemv, ManyRowsThroughTheExpandedGemmMatchTheCpu) {
  LOOM_REQUIRE_CUDA();
  std::mt19937 gen(11);
  const int64_t n = 72, k = 512;
  const std::vector<uint8_t> bytes = random_blocks(GgmlType::Q4_1, n, k, gen);
  struct Case {
    DType dtype;
    bool int8_activations;
  };
  for (Case c : {Case{DType::f32, true}, Case{DType::f32, false}, Case{DType::f16, true}}) {
    const bool f16_gemm = c.dtype == DType::f16 || c.int8_activations;
    for (int64_t m : {9, 64, 300}) {
      for (bool timed : {false, true}) {
        Graph g;
        Tensor x = g.placeholder("x", Shape{m, k}, c.dtype);
        Tensor blocks = g.constant(TensorData::from_vector(bytes, {n, k / 32 * 20}));
        TensorData feed = testing::random_tensor(c.dtype, {m, k});
        // The CPU reference on the same values in f32, the weight expanded exactly, and the
        // bound's sum_k |w x|.
        Graph ref;
        Tensor rx = ref.placeholder("x", Shape{m, k});
        Tensor w =
            dequantize(ref.constant(TensorData::from_vector(bytes, {n, k / 32 * 20})), "Q4_1", k);
        CompileOptions on_cpu;
        on_cpu.outputs = {matmul(rx, w, false, true), matmul(abs(rx), abs(w), false, true)};
        on_cpu.disabled_passes = {"fuse_quantized_matmul"};
        TensorData as_f32 = TensorData::from_floats(feed.to_floats(), DType::f32, {m, k});
        std::vector<TensorData> ref_out = compile(ref, on_cpu).run({{"x", as_f32}});
        std::vector<float> want = ref_out[0].to_floats(), magnitude = ref_out[1].to_floats();
        const double weight_rounding = f16_gemm ? std::ldexp(1.0, -11) : 0.0;
        const double x_rounding = c.dtype == DType::f32 && f16_gemm ? std::ldexp(1.0, -11) : 0.0;
        const double rounding = weight_rounding + x_rounding + weight_rounding * x_rounding +
                                double(k) * std::ldexp(1.0, -24);
        CompileOptions on_gpu;
        on_gpu.device = testing::gpu();
        on_gpu.outputs = {quantized_matmul(x, blocks, "Q4_1", c.int8_activations)};
        on_gpu.time_tactics = timed;
        Executable gpu = compile(g, on_gpu);
        const std::string what = std::string("quantized_matmul ") + dtype_name(c.dtype) +
                                 (c.int8_activations ? "" : " exact") + " m=" + std::to_string(m) +
                                 (timed ? " timed" : " first tactic");
        if (!timed) {
          const std::string dump = gpu.dump();
          EXPECT_NE(dump.find("dequant_gemm"), std::string::npos) << what;
          // The rounded-x tactic only where x is f32 and int8_activations allows it.
          EXPECT_EQ(dump.find("dequant_gemm_f16") != std::string::npos,
                    c.dtype == DType::f32 && c.int8_activations)
              << what << "\n"
              << dump;
        }
        for (int run = 0; run < 2; ++run) {
          std::vector<float> got = gpu.run({{"x", feed}}).at(0).to_host().to_floats();
          ASSERT_EQ(got.size(), want.size()) << what;
          int outside = 0;
          for (size_t i = 0; i < got.size(); ++i)
            outside += std::fabs(double(got[i]) - double(want[i])) >
                       double(magnitude[i]) * rounding + 1e-6;
          EXPECT_EQ(outside, 0) << what << " run " << run;
        }
      }
    }
  }
}

// The GEMV with the norm prologue, SwiGLU and residual epilogues the pass folds in (a
// transformer's rms_norm -> q/k/v, o-projection + residual, silu(gate) * up), against the unfused
// graph on the CPU with exact float products. The GPU sums x^2 in f32 instead of double and does
// not round the normalised x to its dtype: well inside 1e-4 of these magnitudes. With 20 rows of x
// the pass leaves the graph alone on the GPU (the dequantize-and-GEMM tactic has no prologue).
TEST(CudaQuantizedGemv, FoldedNormAndResidualMatchTheCpu) {
  LOOM_REQUIRE_CUDA();
  std::mt19937 gen(5);
  const int64_t k = 576, n = 200;
  for (int64_t rows : {1, 3, 20}) {
    Graph g;
    Tensor x = g.placeholder("x", Shape{rows, k});
    Tensor r = g.placeholder("r", Shape{rows, n});
    Tensor gamma = g.constant(testing::random_tensor(DType::f32, {k}));
    Tensor h = rms_norm(x, gamma, 1e-5);
    std::vector<Tensor> outs;
    for (GgmlType type : {GgmlType::Q4_1, GgmlType::Q8_0}) {
      const std::vector<uint8_t> bytes = random_blocks(type, n, k, gen);
      const int64_t row_bytes = int64_t(bytes.size()) / n;
      outs.push_back(quantized_matmul(h, g.constant(TensorData::from_vector(bytes, {n, row_bytes})),
                                      io::ggml_type_traits(type).name, false));
    }
    outs[1] = outs[1] + r;
    {  // SwiGLU: one GEMV computes the gate and up rows
      std::vector<Tensor> pair;
      for (int i = 0; i < 2; ++i) {
        const std::vector<uint8_t> bytes = random_blocks(GgmlType::Q4_1, n, k, gen);
        pair.push_back(quantized_matmul(
            h, g.constant(TensorData::from_vector(bytes, {n, int64_t(bytes.size()) / n})), "Q4_1",
            false));
      }
      outs.push_back(silu(pair[0]) * pair[1]);
    }
    const Feeds feeds{{"x", testing::random_tensor(DType::f32, {rows, k})},
                      {"r", testing::random_tensor(DType::f32, {rows, n})}};
    CompileOptions on_cpu;
    on_cpu.outputs = outs;
    on_cpu.disabled_passes = {"fuse_quantized_matmul_norm_residual"};
    std::vector<TensorData> want = compile(g, on_cpu).run(feeds);
    CompileOptions on_gpu;
    on_gpu.device = testing::gpu();
    on_gpu.outputs = outs;
    Executable gpu = compile(g, on_gpu);
    const std::string dump = gpu.dump();
    EXPECT_EQ(dump.find("rms_norm") == std::string::npos, rows <= 8) << dump;
    EXPECT_EQ(dump.find("has_gate_blocks=true") != std::string::npos, rows <= 8) << dump;
    for (int run = 0; run < 3; ++run) {  // eager, captured, replayed
      std::vector<TensorData> got = gpu.run(feeds);
      for (size_t i = 0; i < outs.size(); ++i)
        testing::expect_close(got[i].to_host(), testing::to_doubles(want[i]),
                              testing::Tolerance{1e-4, 1e-4},
                              "output " + std::to_string(i) + " rows " + std::to_string(rows));
    }
  }
}

// SmolLM2's attention projections in one launch (fuse_qkv_rope): q and k rotated in the
// GEMV's epilogue, against the CPU's unfused matmuls and ropes. Weights are variables (read
// before the previous kernel finishes, under programmatic dependent launch).
TEST(CudaQuantizedGemv, QkvProjectionsAndRopeInOneLaunchMatchTheCpu) {
  LOOM_REQUIRE_CUDA();
  std::mt19937 gen(11);
  const int64_t k = 576, head_dim = 64, q_heads = 9, kv_heads = 3;
  for (int64_t rows : {1, 3}) {
    for (bool interleaved : {false, true}) {
      for (DType offset_dtype : {DType::i32, DType::i64}) {
        Graph g;
        Tensor x = g.placeholder("x", Shape{rows, 1, k});
        Tensor pos = g.placeholder("pos", Shape{1}, offset_dtype);
        Tensor gamma = g.constant(testing::random_tensor(DType::f32, {k}));
        Tensor h = rms_norm(x, gamma, 1e-5);
        auto heads = [&](const std::string& name, int64_t n_heads) {
          return q4_1_heads(g, h, name, n_heads, head_dim, gen);
        };
        const RopeOptions options{.interleaved = interleaved, .dims = interleaved ? 0 : 32};
        Tensor q = rope(heads("wq", q_heads), pos, options);
        Tensor kk = rope(heads("wk", kv_heads), pos, options);
        Tensor v = heads("wv", kv_heads);
        const std::vector<Tensor> outs{q * 1.0, kk * 1.0, v * 1.0};
        TensorData position = offset_dtype == DType::i32
                                  ? TensorData::from_vector(std::vector<int32_t>{1234}, {1})
                                  : TensorData::from_vector(std::vector<int64_t>{1234}, {1});
        const Feeds feeds{{"x", testing::random_tensor(DType::f32, {rows, 1, k})},
                          {"pos", position}};
        CompileOptions on_cpu;
        on_cpu.outputs = outs;
        on_cpu.disabled_passes = {"fuse_qkv_rope"};
        std::vector<TensorData> want = compile(g, on_cpu).run(feeds);
        CompileOptions on_gpu;
        on_gpu.device = testing::gpu();
        on_gpu.outputs = outs;
        Executable gpu = compile(g, on_gpu);
        const std::string dump = gpu.dump();
        EXPECT_NE(dump.find("quantized_qkv_rope"), std::string::npos) << dump;
        EXPECT_EQ(dump.find(" = rope("), std::string::npos) << dump;
        for (int run = 0; run < 3; ++run) {  // eager, captured, replayed
          std::vector<TensorData> got = gpu.run(feeds);
          for (size_t i = 0; i < outs.size(); ++i)
            testing::expect_close(got[i].to_host(), testing::to_doubles(want[i]),
                                  testing::Tolerance{1e-4, 1e-4},
                                  "output " + std::to_string(i) + " rows " + std::to_string(rows) +
                                      " interleaved " + std::to_string(interleaved));
        }
      }
    }
  }
}

// The same projections with the layer's KV-cache writes folded in (fuse_qkv_cache_write): the
// GEMV's epilogue stores k (rotated) and v in the f32 cache variables at the run-time starts.
// One executable runs a step per position, the first eagerly, the second captured, the rest
// replayed at new positions: the outputs (attention over the caches, q) and both caches match
// the CPU's unfused graph after every step.
TEST(CudaQuantizedGemv, QkvProjectionsWithCacheWritesInOneLaunchMatchTheCpu) {
  LOOM_REQUIRE_CUDA();
  std::mt19937 gen(12);
  const int64_t k = 576, head_dim = 64, q_heads = 9, kv_heads = 3, capacity = 16;
  for (int64_t rows : {1, 3}) {
    for (DType starts_dtype : {DType::i64, DType::i32}) {
      Graph g;
      Tensor x = g.placeholder("x", Shape{rows, 1, k});
      Tensor starts = g.placeholder("cache_starts", Shape{4}, starts_dtype);
      Tensor kv_len = g.placeholder("kv_len", Shape{1}, DType::i64);
      Tensor offset = slice(starts, {0}, {2}, {3});
      Tensor gamma = g.constant(testing::random_tensor(DType::f32, {k}));
      Tensor h = rms_norm(x, gamma, 1e-5);
      auto heads = [&](const std::string& name, int64_t n_heads) {
        return q4_1_heads(g, h, name, n_heads, head_dim, gen);
      };
      const RopeOptions options{.interleaved = false, .dims = 32};
      Tensor q = rope(heads("wq", q_heads), offset, options);
      Tensor kk = rope(heads("wk", kv_heads), offset, options);
      Tensor v = heads("wv", kv_heads);
      const Extents cache_shape{rows, kv_heads, capacity, head_dim};
      Tensor k_cache = g.variable("cache.k", TensorData::zeros(DType::f32, cache_shape));
      Tensor v_cache = g.variable("cache.v", TensorData::zeros(DType::f32, cache_shape));
      Tensor keys = slice_update(g.read(k_cache), kk, starts);
      Tensor values = slice_update(g.read(v_cache), v, starts);
      g.assign(k_cache, keys);
      g.assign(v_cache, values);
      AttentionOptions attention_options;
      attention_options.causal = true;
      attention_options.kv_len = kv_len;
      const std::vector<Tensor> outs{
          scaled_dot_product_attention(q, keys, values, attention_options), q * 1.0};
      CompileOptions on_cpu;
      on_cpu.outputs = outs;
      on_cpu.disabled_passes = {"fuse_qkv_rope", "fuse_qkv_cache_write"};
      Executable cpu = compile(g, on_cpu);
      CompileOptions on_gpu;
      on_gpu.device = testing::gpu();
      on_gpu.outputs = outs;
      Executable gpu = compile(g, on_gpu);
      const std::string dump = gpu.dump();
      EXPECT_NE(dump.find("quantized_qkv_rope_cache"), std::string::npos) << dump;
      EXPECT_EQ(dump.find("slice_update_inplace"), std::string::npos) << dump;
      int run = 0;
      for (int64_t position : {3, 0, 9, 15, 4}) {  // eager, captured, then replays
        std::vector<int64_t> s{0, 0, position, 0};
        TensorData starts_data =
            starts_dtype == DType::i64
                ? TensorData::from_vector(s, {4})
                : TensorData::from_vector(std::vector<int32_t>(s.begin(), s.end()), {4});
        const Feeds feeds{
            {"x", testing::random_tensor(DType::f32, {rows, 1, k})},
            {"cache_starts", starts_data},
            {"kv_len", TensorData::from_vector(std::vector<int64_t>{position + 1}, {1})}};
        const std::vector<TensorData> want = cpu.run(feeds);
        const std::vector<TensorData> got = gpu.run(feeds);
        const std::string label = "rows " + std::to_string(rows) + " position " +
                                  std::to_string(position) + " starts " + dtype_name(starts_dtype);
        if (++run >= 3 && gpu.device().kind == DeviceKind::cuda) {
          EXPECT_TRUE(gpu.last_run_stats().replayed_graph) << label << ": no CUDA graph replay";
        }
        for (size_t i = 0; i < outs.size(); ++i)
          testing::expect_close(got[i].to_host(), testing::to_doubles(want[i]),
                                testing::Tolerance{2e-4, 2e-4},
                                label + " output " + std::to_string(i));
        for (const char* name : {"cache.k", "cache.v"})
          testing::expect_close(gpu.variables().get(name).to_host(),
                                testing::to_doubles(cpu.variables().get(name)),
                                testing::Tolerance{1e-4, 1e-4}, label + " " + name);
      }
    }
  }
}

TEST(CudaQuantizedGemv, RejectsWhatItCannotRun) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA GPU";
  float dummy = 0;
  EXPECT_THROW(
      cuda_ggml_gemv(uint32_t(GgmlType::Q6_K), &dummy, 210, 1, 256, &dummy, DType::f32, 1, &dummy),
      Error);
  EXPECT_THROW(
      cuda_ggml_gemv(uint32_t(GgmlType::Q4_0), &dummy, 18, 1, 32, &dummy, DType::f32, 9, &dummy),
      Error);
  EXPECT_THROW(
      cuda_ggml_gemv(uint32_t(GgmlType::Q4_0), &dummy, 10, 1, 32, &dummy, DType::f32, 1, &dummy),
      Error);
}

}  // namespace loom::quant
