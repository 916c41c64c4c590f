// The accuracy table of docs/quantization.md: each scheme on the same Gaussian weights
// (N(0, 1), 64 x 4096, fixed seed). Run
//   ./build/tests/loom_tests --gtest_filter=QuantAccuracy.*
// to print it. The checks are orderings and ranges that follow from the schemes, so the
// table cannot silently go wrong.
#include <cstdio>
#include <random>

#include "loom/quant.h"
#include "test_util.h"

namespace loom::quant {

TEST(QuantAccuracy, GaussianWeightsTable) {
  const int64_t rows = 64, cols = 4096;
  std::mt19937 gen(20261201);
  std::normal_distribution<float> dist;
  std::vector<float> w(static_cast<size_t>(rows * cols));
  for (float& v : w) v = dist(gen);
  const TensorData weight = TensorData::from_vector(w, {rows, cols});

  struct Row {
    std::string name;
    ReconstructionError error;
  };
  std::vector<Row> table;
  auto affine = [&](const std::string& name, int bits, AffineOffset offset, Granularity g,
                    int64_t block = 0) {
    QuantScheme s;
    s.bits = bits;
    s.offset = offset;
    s.granularity = g;
    s.block_size = block;
    table.push_back({name + " (" + s.describe() + ")",
                     reconstruction_error(weight, dequantize(quantize_affine(weight, s)))});
    return table.back().error;
  };
  auto lookup = [&](const std::string& name, int bits, Granularity g, bool weighted) {
    KMeansOptions o;
    o.magnitude_weighted = weighted;
    o.iterations = 100;
    table.push_back(
        {name, reconstruction_error(weight, dequantize(quantize_lookup(weight, bits, g, o)))});
    return table.back().error;
  };
  const auto int8_channel =
      affine("int8 per channel", 8, AffineOffset::midpoint, Granularity::per_channel);
  const auto int4_channel =
      affine("int4 per channel", 4, AffineOffset::midpoint, Granularity::per_channel);
  affine("int4 min-max per channel", 4, AffineOffset::min, Granularity::per_channel);
  const auto int4_b32 =
      affine("int4 per block 32", 4, AffineOffset::min, Granularity::per_block, 32);
  const auto int4_b64 =
      affine("int4 per block 64", 4, AffineOffset::min, Granularity::per_block, 64);
  const auto int4_b128 =
      affine("int4 per block 128", 4, AffineOffset::min, Granularity::per_block, 128);
  affine("int4 symmetric per block 32 (as Q4_0, f32 scales)", 4, AffineOffset::midpoint,
         Granularity::per_block, 32);
  const auto int5_b32 =
      affine("int5 per block 32", 5, AffineOffset::min, Granularity::per_block, 32);
  const auto int6_b32 =
      affine("int6 per block 32", 6, AffineOffset::min, Granularity::per_block, 32);
  affine("int8 per block 32 (as Q8_0, f32 scales)", 8, AffineOffset::midpoint,
         Granularity::per_block, 32);
  const auto lut4_tensor = lookup("lut4 k-means per tensor", 4, Granularity::per_tensor, false);
  lookup("lut4 k-means per tensor, magnitude-weighted", 4, Granularity::per_tensor, true);
  lookup("lut4 k-means per channel", 4, Granularity::per_channel, false);
  const auto lut8_tensor = lookup("lut8 k-means per tensor", 8, Granularity::per_tensor, false);
  lookup("lut8 k-means per channel", 8, Granularity::per_channel, false);

  std::printf("| scheme | relative RMS | max abs |\n|---|---|---|\n");
  for (const Row& r : table)
    std::printf("| %s | %.4f | %.4f |\n", r.name.c_str(), r.error.relative_rms, r.error.max_abs);

  // Finer groups and more bits lose less.
  EXPECT_LT(int4_b32.relative_rms, int4_b64.relative_rms);
  EXPECT_LT(int4_b64.relative_rms, int4_b128.relative_rms);
  EXPECT_LT(int4_b128.relative_rms, int4_channel.relative_rms);
  EXPECT_LT(int6_b32.relative_rms, int5_b32.relative_rms);
  EXPECT_LT(int5_b32.relative_rms, int4_b32.relative_rms);
  EXPECT_LT(int8_channel.relative_rms, int4_channel.relative_rms / 8);
  EXPECT_LT(lut8_tensor.relative_rms, lut4_tensor.relative_rms / 8);
  // Lloyd-Max's optimum for 16 levels on N(0, 1) has MSE 0.009497 (Max, 1960): relative RMS
  // 0.0975; k-means on a sample of it lands near.
  EXPECT_NEAR(lut4_tensor.relative_rms, 0.0975, 0.004);
}

}  // namespace loom::quant
