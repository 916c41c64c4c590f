// The GGUF-block matmul against the reference dequantizer (checked against gguf-py) and a
// naive matmul in double. With int8 activations the error bound follows from their rounding:
// |x - d q| <= d / 2 per element, d = max|x| / 127 over the element's block of 32.
#include <cstring>

#include "backends/cpu/quantized_matmul_blocks.h"
#include "io/ggml_dequantize.h"
#include "io/ggml_types.h"
#include "loom/error.h"
#include "loom/half.h"
#include "loom/quant.h"
#include "test_util.h"

namespace loom::quant {

namespace {

using io::GgmlType;
using loom::testing::rng;

// Byte offsets of each format's f16 scales inside a block; the other bytes are codes and
// packed integer scales, where any byte is valid.
std::vector<int> f16_fields(GgmlType t) {
  switch (t) {
    case GgmlType::Q4_1:
    case GgmlType::Q5_1:
    case GgmlType::Q4_K:
    case GgmlType::Q5_K:
      return {0, 2};
    case GgmlType::Q6_K:
      return {208};
    default:
      return {0};
  }
}

std::vector<uint8_t> random_blocks(GgmlType type, int64_t n, int64_t k) {
  const io::GgmlTypeTraits& t = io::ggml_type_traits(type);
  const int64_t blocks = n * k / t.block_size;
  std::vector<uint8_t> bytes(static_cast<size_t>(blocks * t.bytes_per_block));
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_real_distribution<float> scale(-0.05f, 0.05f);
  for (auto& b : bytes) b = uint8_t(byte(rng()));
  for (int64_t b = 0; b < blocks; ++b)
    for (int off : f16_fields(type)) {
      const uint16_t h = float_to_f16(scale(rng()));
      std::memcpy(&bytes[size_t(b * t.bytes_per_block + off)], &h, 2);
    }
  return bytes;
}

struct Reference {
  std::vector<double> y;
  std::vector<double> bound;  // per output
};

// Dense weights from the reference dequantizer, y in double, and the bound for int8
// activations (zero when they stay float) plus float accumulation slack.
Reference reference(GgmlType type, const std::vector<uint8_t>& blocks, int64_t n, int64_t k,
                    const std::vector<float>& x, int64_t m, bool int8_activations) {
  std::vector<float> w(static_cast<size_t>(n * k));
  io::dequantize_ggml(type, std::as_bytes(std::span(blocks)), n * k, w.data());
  Reference r{std::vector<double>(size_t(m * n)), std::vector<double>(size_t(m * n))};
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double acc = 0, magnitude = 0, act_err = 0;
      for (int64_t c = 0; c < k; ++c) {
        const double wx = double(w[j * k + c]) * x[i * k + c];
        acc += wx;
        magnitude += std::fabs(wx);
      }
      if (int8_activations)
        for (int64_t b = 0; b < k / 32; ++b) {
          double amax = 0, wsum = 0;
          for (int c = 0; c < 32; ++c) {
            amax = std::max(amax, std::fabs(double(x[i * k + b * 32 + c])));
            wsum += std::fabs(double(w[j * k + b * 32 + c]));
          }
          act_err += wsum * (amax / 127) / 2 * (1 + 1e-5);
        }
      r.y[i * n + j] = acc;
      // float accumulation over K terms, plus the products of scales rounded to float
      r.bound[i * n + j] = act_err + 1e-5 * (magnitude + act_err) + 1e-30;
    }
  return r;
}

std::vector<float> random_x(int64_t count) {
  std::uniform_real_distribution<float> dist(-2.f, 2.f);
  std::vector<float> x(static_cast<size_t>(count));
  for (float& v : x) v = dist(rng());
  return x;
}

// The formats whose blocks are 32 codes with f16 scales: they take int8 activations.
bool has_int8_path(GgmlType t) {
  return t == GgmlType::Q4_0 || t == GgmlType::Q4_1 || t == GgmlType::Q8_0 || t == GgmlType::Q5_0 ||
         t == GgmlType::Q5_1 || t == GgmlType::IQ4_NL || t == GgmlType::Q4_K ||
         t == GgmlType::Q5_K || t == GgmlType::Q6_K;
}

void check(GgmlType type, int64_t n, int64_t k, int64_t m, const GemmOptions& options) {
  const io::GgmlTypeTraits& t = io::ggml_type_traits(type);
  SCOPED_TRACE(std::string(t.name) + " n=" + std::to_string(n) + " k=" + std::to_string(k) +
               " m=" + std::to_string(m) + (options.quantize_activations ? " int8" : " f32") +
               (options.allow_avx2 ? " avx2-if-present" : " portable"));
  const std::vector<uint8_t> blocks = random_blocks(type, n, k);
  const std::vector<float> x = random_x(m * k);
  const bool int8 = options.quantize_activations && has_int8_path(type);
  const Reference ref = reference(type, blocks, n, k, x, m, int8);
  std::vector<float> y(size_t(m * n), NAN);
  ggml_matmul(uint32_t(type), blocks.data(), int64_t(blocks.size()), n, k, x.data(), DType::f32, m,
              y.data(), options);
  double worst = 0;
  for (size_t i = 0; i < y.size(); ++i) {
    ASSERT_LE(std::fabs(y[i] - ref.y[i]), ref.bound[i]) << "output " << i << " want " << ref.y[i];
    worst = std::max(worst, std::fabs(y[i] - ref.y[i]) / ref.bound[i]);
  }
  // With int8 activations the error is a sizeable part of its bound (the kernel did quantize);
  // the largest of a handful of outputs can still be small, so only for 8 or more.
  if (int8 && y.size() >= 8) {
    EXPECT_GT(worst, 0.02);
  }
}

const GgmlType kFastTypes[] = {GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q8_0,
                               GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::IQ4_NL};

}  // namespace

TEST(QuantizedMatmul, Int8ActivationsWithinTheirRoundingBound) {
  for (GgmlType type : kFastTypes)
    for (bool avx2 : {true, false})
      for (int64_t m : {1, 3, 8}) check(type, 37, 256, m, {true, avx2});
}

// The AVX2 kernel's shapes: tiles of 4 (or 2) weight rows with a tail of odd rows, 1 to 4
// activation rows per tile with the rest of M in further tiles, panels of weight rows for
// larger M, K of any whole number of blocks (not only of 256), and N large enough for threads.
TEST(QuantizedMatmul, Int8ActivationsAtEveryTileShape) {
  for (GgmlType type : kFastTypes) {
    for (int64_t m = 1; m <= 17; ++m) check(type, 7, 96, m, {true, true});
    for (int64_t n : {1, 2, 3, 5, 13}) check(type, n, 160, 2, {true, true});
    check(type, 130, 256, 9, {true, true});    // several panels of weight rows
    check(type, 9, 32 * 70, 6, {true, true});  // K in chunks of 32 blocks, summed into y
    check(type, 1001, 576, 1, {true, true});   // both threads, a tail of one row
    check(type, 3, 576, 5, {true, false});
  }
}

// Q4_K, Q5_K and Q6_K: super-blocks of 256 (K a multiple of 256); their AVX2 kernels
// take one weight row and up to four activation rows at a time.
TEST(QuantizedMatmul, KQuantInt8ActivationsWithinTheirRoundingBound) {
  for (GgmlType type : {GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K})
    for (bool avx2 : {true, false}) {
      for (int64_t m : {1, 2, 3, 4, 5, 9}) check(type, 7, 512, m, {true, avx2});
      check(type, 1, 256, 1, {true, avx2});
      check(type, 301, 768, 2, {true, avx2});  // both threads
    }
}

TEST(QuantizedMatmul, AvxActivationQuantizationMatchesPortableBitForBit) {
  if (!cpu_has_avx2()) GTEST_SKIP() << "no AVX2 on this CPU";
  const int64_t k = 32 * 40;
  std::vector<float> x = random_x(k);
  // Edge cases: an all-zero block, a block whose max sits at a negative value, values at
  // exact halves of the step (ties round to even in both), and tiny magnitudes.
  for (int j = 0; j < 32; ++j) x[j] = 0.f;
  x[32 + 5] = -3.5f;
  x[64] = -63.5f;  // d = 0.5, 1 / d = 2: x = (j - 16.5) / 2 scales to an exact tie
  for (int j = 1; j < 32; ++j) x[64 + j] = (float(j) - 16.5f) * 0.5f;
  for (int j = 0; j < 32; ++j) x[96 + j] = 1e-30f * float(j - 7);
  std::vector<detail::ActivationBlock> portable(k / 32), avx(k / 32);
  detail::quantize_activations(x.data(), k, portable.data());
  detail::quantize_activations_avx2(x.data(), k, avx.data());
  for (int64_t b = 0; b < k / 32; ++b) {
    EXPECT_EQ(portable[b].d, avx[b].d) << b;
    EXPECT_EQ(portable[b].s, avx[b].s) << b;
    for (int j = 0; j < 32; ++j) EXPECT_EQ(portable[b].q[j], avx[b].q[j]) << b << " " << j;
  }
}

TEST(QuantizedMatmul, FloatActivationsMatchTheDequantizedProduct) {
  for (GgmlType type : {GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1,
                        GgmlType::Q8_0, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K,
                        GgmlType::IQ4_NL, GgmlType::F16, GgmlType::BF16})
    check(type, 9, 512, 2, {false, true});
  // The other formats take the float path even when int8 activations are asked for.
  check(GgmlType::BF16, 5, 256, 1, {true, true});
}

TEST(QuantizedMatmul, AvxAndPortablePathsAgree) {
  if (!cpu_has_avx2()) GTEST_SKIP() << "no AVX2 on this CPU";
  std::vector<GgmlType> types(std::begin(kFastTypes), std::end(kFastTypes));
  types.push_back(GgmlType::Q4_K);
  types.push_back(GgmlType::Q5_K);
  types.push_back(GgmlType::Q6_K);
  for (GgmlType type : types) {
    for (int64_t m : {1, 2, 3, 4, 6, 11}) {
      const int64_t n = 67, k = 1280;  // 40 blocks: a K chunk of 32 and a rest
      const std::vector<uint8_t> blocks = random_blocks(type, n, k);
      const std::vector<float> x = random_x(m * k);
      std::vector<float> fast(static_cast<size_t>(m * n)), portable(static_cast<size_t>(m * n));
      ggml_matmul(uint32_t(type), blocks.data(), int64_t(blocks.size()), n, k, x.data(), DType::f32,
                  m, fast.data(), {true, true});
      ggml_matmul(uint32_t(type), blocks.data(), int64_t(blocks.size()), n, k, x.data(), DType::f32,
                  m, portable.data(), {true, false});
      // Same integer sums; only the order of the float sums of blocks differs.
      const Reference ref = reference(type, blocks, n, k, x, m, false);
      for (size_t i = 0; i < fast.size(); ++i)
        EXPECT_NEAR(fast[i], portable[i], ref.bound[i]) << "m=" << m << " output " << i;
    }
  }
}

// f16 and bf16 x, through the float path and through int8 activations (each row is widened
// to f32 inside the parallel region, then quantized), on both code paths.
TEST(QuantizedMatmul, HalfPrecisionActivations) {
  const int64_t n = 16, k = 128, m = 3;
  const std::vector<uint8_t> blocks = random_blocks(GgmlType::Q8_0, n, k);
  const std::vector<float> x = random_x(m * k);
  for (DType dt : {DType::f16, DType::bf16})
    for (bool int8 : {false, true})
      for (bool avx2 : {true, false}) {
        const TensorData xt = TensorData::from_floats(x, dt, {m, k});
        const std::vector<float> rounded = xt.to_floats();  // the reference sees the rounded x
        const Reference ref = reference(GgmlType::Q8_0, blocks, n, k, rounded, m, int8);
        std::vector<float> y(static_cast<size_t>(m * n));
        ggml_matmul(uint32_t(GgmlType::Q8_0), blocks.data(), int64_t(blocks.size()), n, k,
                    xt.data(), dt, m, y.data(), {int8, avx2});
        for (size_t i = 0; i < y.size(); ++i)
          EXPECT_NEAR(y[i], ref.y[i], ref.bound[i])
              << dtype_name(dt) << " int8=" << int8 << " " << i;
      }
}

TEST(QuantizedMatmul, EmptyAndBadInputs) {
  const std::vector<uint8_t> blocks = random_blocks(GgmlType::Q4_0, 2, 64);
  const std::vector<float> x(64, 1.f);
  std::vector<float> y(2);
  auto kind_of = [](auto&& f) {
    try {
      f();
    } catch (const Error& e) {
      return e.kind();
    }
    return ErrorKind::internal;
  };
  const uint32_t q4 = uint32_t(GgmlType::Q4_0);
  EXPECT_EQ(kind_of([&] {
              ggml_matmul(q4, blocks.data(), 36, 2, 48, x.data(), DType::f32, 1, y.data());
            }),
            ErrorKind::shape);  // K not whole blocks
  EXPECT_EQ(kind_of([&] {
              ggml_matmul(q4, blocks.data(), 35, 2, 32, x.data(), DType::f32, 1, y.data());
            }),
            ErrorKind::shape);  // too few bytes
  EXPECT_EQ(kind_of([&] {
              ggml_matmul(99, blocks.data(), 36, 2, 32, x.data(), DType::f32, 1, y.data());
            }),
            ErrorKind::unsupported);
  EXPECT_EQ(kind_of([&] {
              ggml_matmul(q4, blocks.data(), 72, 2, 64, x.data(), DType::i32, 1, y.data());
            }),
            ErrorKind::dtype);
  // M = 0 writes nothing and does not fail.
  EXPECT_NO_THROW(ggml_matmul(q4, blocks.data(), 72, 2, 64, x.data(), DType::f32, 0, y.data()));
  // K = 0: every output is an empty sum, on both paths and for a K-quant.
  for (uint32_t type : {q4, uint32_t(GgmlType::Q4_K)})
    for (bool avx2 : {true, false}) {
      std::vector<float> z(6, NAN);
      ggml_matmul(type, blocks.data(), 0, 3, 0, x.data(), DType::f32, 2, z.data(), {true, avx2});
      for (float v : z) EXPECT_EQ(v, 0.f);
    }
}

TEST(QuantizedMatmul, QuantizedTensorMatmulMatchesItsDequantizedWeights) {
  const int64_t n = 12, k = 96, m = 3;
  std::normal_distribution<float> dist;
  std::vector<float> w(static_cast<size_t>(n * k));
  for (float& v : w) v = dist(rng());
  QuantScheme s;
  s.bits = 4;
  s.offset = AffineOffset::min;
  s.granularity = Granularity::per_block;
  s.block_size = 32;
  const QuantizedTensor q = quantize_affine(TensorData::from_vector(w, {n, k}), s);
  const std::vector<float> dense = dequantize(q).to_floats();
  const std::vector<float> x = random_x(m * k);
  std::vector<float> y(static_cast<size_t>(m * n));
  quantized_matmul(q, x.data(), m, y.data());
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double want = 0, magnitude = 0;
      for (int64_t c = 0; c < k; ++c) {
        want += double(dense[j * k + c]) * x[i * k + c];
        magnitude += std::fabs(double(dense[j * k + c]) * x[i * k + c]);
      }
      EXPECT_NEAR(y[i * n + j], want, 1e-5 * magnitude);
    }
}

}  // namespace loom::quant
