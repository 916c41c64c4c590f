// The graph ops dequantize and quantized_matmul: wired to the kernels (their results are those
// of the direct calls, which tests/quant/quantized_matmul_test.cpp checks against references),
// batch dims of x, half-precision x, and the errors inference reports.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "io/ggml_dequantize.h"
#include "io/ggml_types.h"
#include "loom/half.h"
#include "loom/quant.h"
#include "test_util.h"

namespace loom::quant {

namespace {

using io::GgmlType;
using loom::testing::rng;
using loom::testing::run_once;

TensorData random_blocks(GgmlType type, int64_t n, int64_t k) {
  const io::GgmlTypeTraits& t = io::ggml_type_traits(type);
  const int64_t row_bytes = k / t.block_size * t.bytes_per_block;
  std::vector<uint8_t> bytes(static_cast<size_t>(n * row_bytes));
  std::uniform_int_distribution<int> byte(0, 255);
  for (auto& b : bytes) b = uint8_t(byte(rng()));
  const bool has_min = type == GgmlType::Q4_1;
  for (int64_t b = 0; b < n * k / t.block_size; ++b)
    for (int off = 0; off <= (has_min ? 2 : 0); off += 2) {
      const uint16_t h = float_to_f16(0.01f * float(b % 7 + 1));
      std::memcpy(&bytes[size_t(b * t.bytes_per_block + off)], &h, 2);
    }
  return TensorData::from_vector(bytes, {n, row_bytes});
}

}  // namespace

TEST(QuantOps, QuantizedMatmulIsTheKernelsProduct) {
  for (GgmlType type : {GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q8_0}) {
    const char* format = io::ggml_type_traits(type).name;
    const int64_t n = 24, k = 128;
    const TensorData blocks = random_blocks(type, n, k);
    const TensorData x = loom::testing::random_tensor(DType::f32, {2, 3, k});
    Graph g;
    Tensor xt = g.placeholder("x", Shape{2, 3, k});
    Tensor y = quantized_matmul(xt, g.constant(blocks), format);
    const TensorData got = run_once(g, {y}, {{"x", x}})[0];
    ASSERT_EQ(got.shape(), (Extents{2, 3, n}));
    std::vector<float> want(static_cast<size_t>(6 * n));
    ggml_matmul(uint32_t(type), blocks.data(), int64_t(blocks.nbytes()), n, k, x.data(), DType::f32,
                6, want.data());
    EXPECT_EQ(got.to_vector<float>(), want) << format;
  }
}

TEST(QuantOps, DequantizeIsTheReferenceDequantizer) {
  const int64_t n = 5, k = 256;
  const TensorData blocks = random_blocks(GgmlType::Q8_0, n, k);
  Graph g;
  Tensor w = dequantize(g.constant(blocks), "Q8_0", k);
  const TensorData got = run_once(g, {w}, {})[0];
  ASSERT_EQ(got.shape(), (Extents{n, k}));
  std::vector<float> want(static_cast<size_t>(n * k));
  io::dequantize_ggml(GgmlType::Q8_0,
                      std::span(static_cast<const std::byte*>(blocks.data()), blocks.nbytes()),
                      n * k, want.data());
  EXPECT_EQ(got.to_vector<float>(), want);
}

TEST(QuantOps, HalfPrecisionActivations) {
  const int64_t n = 8, k = 64;
  const TensorData blocks = random_blocks(GgmlType::Q4_0, n, k);
  const TensorData x = loom::testing::random_tensor(DType::f16, {1, k});
  Graph g;
  Tensor y =
      quantized_matmul(g.placeholder("x", Shape{1, k}, DType::f16), g.constant(blocks), "Q4_0");
  const TensorData got = run_once(g, {y}, {{"x", x}})[0];
  std::vector<float> want(static_cast<size_t>(n));
  ggml_matmul(uint32_t(GgmlType::Q4_0), blocks.data(), int64_t(blocks.nbytes()), n, k, x.data(),
              DType::f16, 1, want.data());
  EXPECT_EQ(got.dtype(), DType::f32);
  EXPECT_EQ(got.to_vector<float>(), want);
}

TEST(QuantOps, PassTurnsMatmulOfDequantizedWeightIntoQuantizedMatmul) {
  const int64_t n = 16, k = 64;
  const TensorData blocks = random_blocks(GgmlType::Q8_0, n, k);
  const TensorData x = loom::testing::random_tensor(DType::f32, {3, k});
  std::vector<float> fused(static_cast<size_t>(3 * n));
  ggml_matmul(uint32_t(GgmlType::Q8_0), blocks.data(), int64_t(blocks.nbytes()), n, k, x.data(),
              DType::f32, 3, fused.data());
  const std::vector<float> xv = x.to_floats();
  std::vector<float> dense(static_cast<size_t>(n * k));
  io::dequantize_ggml(GgmlType::Q8_0,
                      std::span(static_cast<const std::byte*>(blocks.data()), blocks.nbytes()),
                      n * k, dense.data());
  for (bool transpose_op : {true, false}) {
    Graph g;
    Tensor xt = g.placeholder("x", Shape{3, k});
    Tensor w = dequantize(g.constant(blocks), "Q8_0", k);
    Tensor y = transpose_op ? matmul(xt, transpose(w, {1, 0})) : matmul(xt, w, false, true);
    for (bool enabled : {true, false}) {
      CompileOptions options;
      options.outputs = {y};
      if (!enabled) options.disabled_passes = {"fuse_quantized_matmul"};
      Executable exe = compile(g, options);
      const std::vector<float> got = exe.run({{"x", x}})[0].to_vector<float>();
      const std::string dump = exe.dump();
      EXPECT_EQ(dump.find("quantized_matmul") != std::string::npos, enabled) << dump;
      EXPECT_EQ(dump.find("dequantize") != std::string::npos, !enabled) << dump;
      if (enabled) {
        EXPECT_EQ(got, fused);
      } else {  // the dense product differs by the int8 rounding of x only
        for (int64_t i = 0; i < 3; ++i)
          for (int64_t j = 0; j < n; ++j) {
            double bound = 0;  // sum over blocks of sum |w| * d_x / 2, plus f32 sums
            for (int64_t b = 0; b < k / 32; ++b) {
              double amax = 0, wsum = 0;
              for (int64_t c = b * 32; c < b * 32 + 32; ++c) {
                amax = std::max(amax, double(std::fabs(xv[size_t(i * k + c)])));
                wsum += std::fabs(dense[size_t(j * k + c)]);
              }
              bound += wsum * amax / 127 / 2 * 1.001 + 1e-5 * wsum * amax;
            }
            EXPECT_NEAR(got[size_t(i * n + j)], fused[size_t(i * n + j)], bound);
          }
      }
    }
  }
}

// rms_norm -> three quantized_matmuls (q, k, v), add(quantized_matmul, residual) and
// silu(gate) * up, as in a transformer block: the pass folds the norm into each matmul, the
// add into its matmul and the gate into the up matmul,
// and on the CPU the result is the same to the bit (the same norm arithmetic, then the same
// product, then the same f32 add). A norm with another user stays.
TEST(QuantOps, NormAndResidualFoldIntoQuantizedMatmul) {
  const int64_t k = 96, n = 40;
  for (int64_t rows : {1, 5}) {
    for (bool other_user : {false, true}) {
      Graph g;
      Tensor x = g.placeholder("x", Shape{rows, k});
      Tensor r = g.placeholder("r", Shape{rows, n});
      Tensor gamma = g.constant(loom::testing::random_tensor(DType::f32, {k}));
      Tensor h = rms_norm(x, gamma, 1e-5);
      std::vector<Tensor> outs;
      for (GgmlType type : {GgmlType::Q4_1, GgmlType::Q8_0, GgmlType::Q4_0})
        outs.push_back(quantized_matmul(h, g.constant(random_blocks(type, n, k)),
                                        io::ggml_type_traits(type).name));
      outs[2] = outs[2] + r;
      // A gated MLP's SwiGLU: folds into the up matmul, which computes both rows.
      // Either may be built first (with 5 rows the up projection is).
      Tensor gate, up;
      if (rows == 5)
        up = quantized_matmul(h, g.constant(random_blocks(GgmlType::Q4_1, n, k)), "Q4_1");
      gate = quantized_matmul(h, g.constant(random_blocks(GgmlType::Q4_1, n, k)), "Q4_1");
      if (rows != 5)
        up = quantized_matmul(h, g.constant(random_blocks(GgmlType::Q4_1, n, k)), "Q4_1");
      outs.push_back(silu(gate) * up);
      if (other_user) outs.push_back(h * 2.0);
      const Feeds feeds{{"x", loom::testing::random_tensor(DType::f32, {rows, k})},
                        {"r", loom::testing::random_tensor(DType::f32, {rows, n})}};
      std::vector<std::vector<float>> results[2];
      for (bool enabled : {true, false}) {
        CompileOptions options;
        options.outputs = outs;
        if (!enabled) options.disabled_passes = {"fuse_quantized_matmul_norm_residual"};
        Executable exe = compile(g, options);
        const std::string dump = exe.dump();
        const bool norm_fused = enabled && !other_user;
        EXPECT_EQ(dump.find("rms_norm") == std::string::npos, norm_fused) << dump;
        EXPECT_EQ(dump.find("has_residual=true") != std::string::npos, enabled) << dump;
        EXPECT_EQ(dump.find("has_gate_blocks=true") != std::string::npos, enabled) << dump;
        EXPECT_EQ(dump.find("silu") == std::string::npos, enabled) << dump;
        for (const TensorData& t : exe.run(feeds)) results[enabled].push_back(t.to_floats());
      }
      for (size_t i = 0; i < 4; ++i)
        EXPECT_EQ(results[1][i], results[0][i]) << "output " << i << " rows " << rows;
    }
  }
}

// An attention layer's decode projections: q and k roped, v not, all from one normalised x.
// The fused node must change no bit on the CPU (it calls the same kernels), and it is made
// only where each rope's rows are one position.
TEST(QuantOps, QkvProjectionsAndRopeFuseIntoOneNode) {
  const int64_t k = 64, head_dim = 16, q_heads = 4, kv_heads = 2;
  for (GgmlType type : {GgmlType::Q4_1, GgmlType::Q8_0}) {
    for (bool interleaved : {false, true}) {
      for (int64_t seq : {1, 3}) {
        Graph g;
        Tensor x = g.placeholder("x", Shape{1, seq, k});
        Tensor pos = g.placeholder("pos", Shape{1}, DType::i32);
        Tensor gamma = g.constant(loom::testing::random_tensor(DType::f32, {k}));
        Tensor h = rms_norm(x, gamma, 1e-5);
        const std::string format = io::ggml_type_traits(type).name;
        auto heads = [&](const std::string& name, int64_t n_heads) {
          Tensor w = g.variable(name, random_blocks(type, n_heads * head_dim, k));
          Tensor y = quantized_matmul(h, w, format);
          return transpose(reshape(y, {1, seq, n_heads, head_dim}), {0, 2, 1, 3});
        };
        const RopeOptions options{.base = 10000.0, .interleaved = interleaved, .dims = 8};
        Tensor q = rope(heads("wq", q_heads), pos, options);
        Tensor kk = rope(heads("wk", kv_heads), pos, options);
        Tensor v = heads("wv", kv_heads);
        const Feeds feeds{{"x", loom::testing::random_tensor(DType::f32, {1, seq, k})},
                          {"pos", TensorData::from_vector(std::vector<int32_t>{7}, {1})}};
        std::vector<std::vector<float>> results[2];
        for (bool enabled : {true, false}) {
          CompileOptions compile_options;
          compile_options.outputs = {q * 1.5, kk * 1.5, v * 1.5};
          if (!enabled) compile_options.disabled_passes = {"fuse_qkv_rope"};
          Executable exe = compile(g, compile_options);
          const std::string dump = exe.dump();
          const bool fused = enabled && seq == 1;
          EXPECT_EQ(dump.find("quantized_qkv_rope") != std::string::npos, fused) << dump;
          EXPECT_EQ(dump.find("quantized_matmul") == std::string::npos, fused) << dump;
          EXPECT_EQ(dump.find(" = rope(") == std::string::npos, fused) << dump;
          for (const TensorData& t : exe.run(feeds)) results[enabled].push_back(t.to_floats());
        }
        for (size_t i = 0; i < 3; ++i)
          EXPECT_EQ(results[1][i], results[0][i])
              << format << " output " << i << " seq " << seq << " interleaved " << interleaved;
      }
    }
  }
}

// A decode step's attention layer as build_llama_graph makes it: q, k, v projections with
// rope, k and v written into f32 cache variables by slice_update + assign at run-time starts,
// attention over the updated caches. After inplace_state, fuse_qkv_cache_write folds the two
// in-place cache writes into the fused projection node: two kernels fewer, and over several
// steps (positions read at run time by one executable) the outputs and the caches keep the
// bits of the graph with the pass off.
TEST(QuantOps, QkvCacheWritesFuseIntoTheProjectionNode) {
  const int64_t k = 64, head_dim = 16, q_heads = 4, kv_heads = 2, capacity = 8;
  for (GgmlType type : {GgmlType::Q4_1, GgmlType::Q8_0}) {
    for (int64_t batch : {1, 2}) {
      Graph g;
      Tensor x = g.placeholder("x", Shape{batch, 1, k});
      Tensor starts = g.placeholder("cache_starts", Shape{4}, DType::i64);
      Tensor kv_len = g.placeholder("kv_len", Shape{1}, DType::i64);
      Tensor offset = slice(starts, {0}, {2}, {3});
      Tensor gamma = g.constant(loom::testing::random_tensor(DType::f32, {k}));
      Tensor h = rms_norm(x, gamma, 1e-5);
      const std::string format = io::ggml_type_traits(type).name;
      auto heads = [&](const std::string& name, int64_t n_heads) {
        Tensor w = g.variable(name, random_blocks(type, n_heads * head_dim, k));
        Tensor y = quantized_matmul(h, w, format);
        return transpose(reshape(y, {batch, 1, n_heads, head_dim}), {0, 2, 1, 3});
      };
      const RopeOptions rope_options{.base = 10000.0, .interleaved = false, .dims = 0};
      Tensor q = rope(heads("wq", q_heads), offset, rope_options);
      Tensor kk = rope(heads("wk", kv_heads), offset, rope_options);
      Tensor v = heads("wv", kv_heads);
      const Extents cache_shape{batch, kv_heads, capacity, head_dim};
      Tensor k_cache = g.variable("cache.k", TensorData::zeros(DType::f32, cache_shape));
      Tensor v_cache = g.variable("cache.v", TensorData::zeros(DType::f32, cache_shape));
      Tensor keys = slice_update(g.read(k_cache), kk, starts);
      Tensor values = slice_update(g.read(v_cache), v, starts);
      g.assign(k_cache, keys);
      g.assign(v_cache, values);
      AttentionOptions attention_options;
      attention_options.causal = true;
      attention_options.kv_len = kv_len;
      Tensor out = scaled_dot_product_attention(q, keys, values, attention_options);

      std::vector<Feeds> steps;  // positions out of order: each step reads its own
      for (int64_t position : {0, 1, 5, 2, 7})
        steps.push_back(
            {{"x", loom::testing::random_tensor(DType::f32, {batch, 1, k})},
             {"cache_starts",
              TensorData::from_vector(std::vector<int64_t>{0, 0, position, 0}, {4})},
             {"kv_len", TensorData::from_vector(std::vector<int64_t>{position + 1}, {1})}});
      std::vector<std::vector<float>> results[2], caches[2];
      size_t kernels[2] = {0, 0};
      for (bool enabled : {true, false}) {
        CompileOptions options;
        options.outputs = {out, q * 1.5};
        if (!enabled) options.disabled_passes = {"fuse_qkv_cache_write"};
        Executable exe = compile(g, options);
        const std::string dump = exe.dump();
        EXPECT_EQ(dump.find("quantized_qkv_rope_cache") != std::string::npos, enabled) << dump;
        EXPECT_EQ(dump.find("slice_update_inplace") == std::string::npos, enabled) << dump;
        for (const Feeds& feeds : steps) {
          for (const TensorData& t : exe.run(feeds)) results[enabled].push_back(t.to_floats());
          kernels[enabled] = exe.last_run_stats().kernels;
          for (const char* name : {"cache.k", "cache.v"})
            caches[enabled].push_back(exe.variables().get(name).to_floats());
        }
      }
      EXPECT_EQ(kernels[0], kernels[1] + 2) << format << " batch " << batch;  // [enabled]
      ASSERT_EQ(results[0].size(), results[1].size());
      for (size_t i = 0; i < results[0].size(); ++i)
        EXPECT_EQ(results[1][i], results[0][i]) << format << " output " << i << " batch " << batch;
      ASSERT_EQ(caches[0].size(), caches[1].size());
      for (size_t i = 0; i < caches[0].size(); ++i)
        EXPECT_EQ(caches[1][i], caches[0][i]) << format << " cache " << i << " batch " << batch;
    }
  }
}

TEST(QuantOps, InferenceRejectsBadBlocks) {
  const TensorData blocks = random_blocks(GgmlType::Q4_0, 4, 64);  // rows of 36 bytes
  auto kind_of = [](auto&& f) {
    try {
      f();
    } catch (const Error& e) {
      return e.kind();
    }
    return ErrorKind::internal;
  };
  Graph g;
  Tensor b = g.constant(blocks);
  EXPECT_EQ(kind_of([&] {
              quantized_matmul(g.placeholder("a", Shape{1, 96}), b, "Q4_0");
            }),
            ErrorKind::shape);  // 96 elements take 54 bytes
  EXPECT_EQ(kind_of([&] {
              quantized_matmul(g.placeholder("c", Shape{1, 48}), b, "Q4_0");
            }),
            ErrorKind::shape);  // not whole blocks
  EXPECT_EQ(kind_of([&] {
              quantized_matmul(g.placeholder("d", Shape{1, 64}), b, "Q9_0");
            }),
            ErrorKind::value);
  EXPECT_EQ(kind_of([&] {
              quantized_matmul(g.placeholder("e", Shape{1, 64}, DType::i32), b, "Q4_0");
            }),
            ErrorKind::dtype);
  EXPECT_EQ(kind_of([&] { dequantize(g.constant(0.0), "Q4_0", 64); }), ErrorKind::dtype);
  EXPECT_EQ(kind_of([&] { dequantize(b, "Q4_0", 32); }), ErrorKind::shape);
}

}  // namespace loom::quant
