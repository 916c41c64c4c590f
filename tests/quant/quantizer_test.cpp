// The offline quantizer against bounds that follow from each scheme, computed here from the
// original weights with naive loops.
#include <algorithm>
#include <cmath>

#include "loom/error.h"
#include "loom/quant.h"
#include "test_util.h"

namespace loom::quant {

namespace {

using loom::testing::rng;

std::vector<float> gaussian(int64_t count, float sigma = 1.f) {
  std::normal_distribution<float> dist(0.f, sigma);
  std::vector<float> v(static_cast<size_t>(count));
  for (float& x : v) x = dist(rng());
  return v;
}

QuantScheme affine(int bits, AffineOffset offset, Granularity g, int64_t block = 0) {
  QuantScheme s;
  s.bits = bits;
  s.offset = offset;
  s.granularity = g;
  s.block_size = block;
  return s;
}

// The widest per-element error each scheme allows for a group with range [lo, hi], plus a
// few float roundings of the largest magnitude.
double affine_bound(const QuantScheme& s, double lo, double hi) {
  const double levels = double(s.levels());
  const double mag = std::max(std::fabs(lo), std::fabs(hi));
  const double rounding = 8 * 1.2e-7 * mag;
  switch (s.offset) {
    case AffineOffset::midpoint:
      return mag / (levels / 2 - 1) / 2 + rounding;
    case AffineOffset::min:
      return (hi - lo) / (levels - 1) / 2 + rounding;
    case AffineOffset::zero_point:  // the rounded zero shifts the grid by up to half a step
      return (std::max(hi, 0.0) - std::min(lo, 0.0)) / (levels - 1) + rounding;
  }
  return 0;
}

void check_affine(const QuantScheme& s, int64_t rows, int64_t cols) {
  SCOPED_TRACE(s.describe());
  const std::vector<float> w = gaussian(rows * cols);
  const TensorData weight = TensorData::from_vector(w, {rows, cols});
  const QuantizedTensor q = quantize_affine(weight, s);
  const std::vector<float> back = dequantize(q).to_floats();
  const int64_t width = s.granularity == Granularity::per_block ? s.block_size : cols;
  double worst_ratio = 0;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      // The group's range, found here from the original weights.
      double lo = 1e30, hi = -1e30;
      auto visit = [&](int64_t rr, int64_t cc) {
        lo = std::min(lo, double(w[rr * cols + cc]));
        hi = std::max(hi, double(w[rr * cols + cc]));
      };
      if (s.granularity == Granularity::per_tensor) {
        for (int64_t i = 0; i < rows * cols; ++i) visit(i / cols, i % cols);
      } else {
        const int64_t begin = c / width * width;
        for (int64_t cc = begin; cc < begin + width; ++cc) visit(r, cc);
      }
      const double err = std::fabs(double(w[r * cols + c]) - back[r * cols + c]);
      const double bound = affine_bound(s, lo, hi);
      ASSERT_LE(err, bound) << "element (" << r << ", " << c << ")";
      worst_ratio = std::max(worst_ratio, err / bound);
    }
  // Some element comes near the bound (half of it for zero_point, whose bound covers the
  // shifted grid's ends), so a quantizer that did nothing would fail.
  EXPECT_GT(worst_ratio, 0.4);
}

}  // namespace

TEST(Quantizer, AffineMinPerBlockStaysWithinHalfAStep) {
  for (int bits : {4, 5, 6, 8})
    for (int64_t block : {32, 64, 128, 256})
      check_affine(affine(bits, AffineOffset::min, Granularity::per_block, block), 6, 512);
}

TEST(Quantizer, SymmetricPerChannelAndPerTensor) {
  for (int bits : {4, 5, 6, 8}) {
    check_affine(affine(bits, AffineOffset::midpoint, Granularity::per_channel), 16, 100);
    check_affine(affine(bits, AffineOffset::midpoint, Granularity::per_tensor), 16, 100);
    check_affine(affine(bits, AffineOffset::midpoint, Granularity::per_block, 32), 4, 96);
  }
}

TEST(Quantizer, ZeroPointKeepsZeroExact) {
  for (int bits : {4, 8}) {
    const QuantScheme s = affine(bits, AffineOffset::zero_point, Granularity::per_channel);
    check_affine(s, 8, 64);
    // Positive weights: the range is stretched to 0, and 0 itself comes back as 0.
    std::vector<float> w = {0.f, 0.5f, 1.f, 3.f};
    const QuantizedTensor q = quantize_affine(TensorData::from_vector(w, {1, 4}), s);
    EXPECT_EQ(dequantize(q).to_floats()[0], 0.f);
  }
}

TEST(Quantizer, ConstantGroupsComeBackExactly) {
  const std::vector<float> w(64, 0.f);
  for (AffineOffset o : {AffineOffset::midpoint, AffineOffset::min, AffineOffset::zero_point}) {
    const QuantizedTensor q = quantize_affine(TensorData::from_vector(w, {2, 32}),
                                              affine(4, o, Granularity::per_block, 32));
    for (float v : dequantize(q).to_floats()) EXPECT_EQ(v, 0.f);
  }
}

TEST(Quantizer, CodesPackAcrossByteBoundaries) {
  // 5- and 6-bit codes straddle bytes; an odd K leaves a partial last byte.
  for (int bits : {5, 6}) {
    std::vector<float> w(3 * 7);
    for (size_t i = 0; i < w.size(); ++i) w[i] = float(i % ((1 << bits) - 1));
    // min-max per channel with integer data of step 1 puts every value on the grid... when the
    // range is levels - 1; make each row span 0..levels-1 exactly.
    for (int r = 0; r < 3; ++r) {
      w[r * 7 + 0] = 0;
      w[r * 7 + 6] = float((1 << bits) - 1);
    }
    const QuantizedTensor q =
        quantize_affine(TensorData::from_vector(w, {3, 7}),
                        affine(bits, AffineOffset::min, Granularity::per_channel));
    EXPECT_EQ(q.row_bytes(), (7 * bits + 7) / 8);
    const std::vector<float> back = dequantize(q).to_floats();
    for (size_t i = 0; i < w.size(); ++i) EXPECT_FLOAT_EQ(back[i], w[i]) << i;
  }
}

TEST(Quantizer, LookupIsExactForFewDistinctValues) {
  // 16 distinct values per row: a 4-bit table per channel holds them all.
  std::vector<float> w(4 * 64);
  for (int r = 0; r < 4; ++r)
    for (int c = 0; c < 64; ++c) w[r * 64 + c] = float(r) + 0.37f * float((c * 7) % 16);
  for (bool weighted : {false, true}) {
    KMeansOptions options;
    options.magnitude_weighted = weighted;
    options.iterations = 50;
    const QuantizedTensor q =
        quantize_lookup(TensorData::from_vector(w, {4, 64}), 4, Granularity::per_channel, options);
    const ReconstructionError e =
        reconstruction_error(TensorData::from_vector(w, {4, 64}), dequantize(q));
    EXPECT_EQ(e.max_abs, 0.0) << "weighted " << weighted;
  }
}

TEST(Quantizer, LookupMapsToTheNearestEntryAndBeatsUniform) {
  const int64_t rows = 64, cols = 256;
  const std::vector<float> w = gaussian(rows * cols);
  const TensorData weight = TensorData::from_vector(w, {rows, cols});
  for (int bits : {4, 8}) {
    const QuantizedTensor q = quantize_lookup(weight, bits, Granularity::per_tensor);
    const std::vector<float> table = q.table.to_floats();
    ASSERT_EQ(int64_t(table.size()), int64_t(1) << bits);
    const std::vector<float> back = dequantize(q).to_floats();
    for (size_t i = 0; i < w.size(); ++i) {
      double best = 1e30;
      for (float t : table) best = std::min(best, std::fabs(double(w[i]) - t));
      ASSERT_NEAR(std::fabs(double(w[i]) - back[i]), best, 1e-7) << i;
    }
    // On Gaussian weights a k-means table beats the uniform grid of the same size.
    const QuantizedTensor uniform =
        quantize_affine(weight, affine(bits, AffineOffset::min, Granularity::per_tensor));
    EXPECT_LT(reconstruction_error(weight, dequantize(q)).relative_rms,
              reconstruction_error(weight, dequantize(uniform)).relative_rms);
  }
}

TEST(Quantizer, ReconstructionErrorIsRmsAndMax) {
  const TensorData a = TensorData::from_vector(std::vector<float>{3, 4}, {1, 2});
  const TensorData b = TensorData::from_vector(std::vector<float>{3, 4.5f}, {1, 2});
  const ReconstructionError e = reconstruction_error(a, b);
  EXPECT_DOUBLE_EQ(e.relative_rms, 0.5 / 5.0);
  EXPECT_DOUBLE_EQ(e.max_abs, 0.5);
}

TEST(Quantizer, AcceptsHalfPrecisionWeights) {
  const std::vector<float> w = gaussian(4 * 64);
  for (DType dt : {DType::f16, DType::bf16}) {
    const TensorData weight = TensorData::from_floats(w, dt, {4, 64});
    const QuantizedTensor q =
        quantize_affine(weight, affine(8, AffineOffset::min, Granularity::per_block, 32));
    EXPECT_LT(reconstruction_error(weight, dequantize(q)).relative_rms, 0.01);
  }
}

TEST(Quantizer, BadInputIsAnError) {
  const TensorData w = TensorData::from_vector(std::vector<float>(40, 1.f), {2, 20});
  auto kind_of = [](auto&& f) {
    try {
      f();
    } catch (const Error& e) {
      return e.kind();
    }
    return ErrorKind::internal;
  };
  EXPECT_EQ(kind_of([&] {
              quantize_affine(w, affine(4, AffineOffset::min, Granularity::per_block, 32));
            }),
            ErrorKind::shape);
  EXPECT_EQ(
      kind_of([&] { quantize_affine(w, affine(3, AffineOffset::min, Granularity::per_channel)); }),
      ErrorKind::value);
  EXPECT_EQ(kind_of([&] {
              quantize_affine(TensorData::from_vector(std::vector<float>(4, 1.f), {4}),
                              affine(8, AffineOffset::min, Granularity::per_channel));
            }),
            ErrorKind::shape);
  EXPECT_EQ(kind_of([&] {
              quantize_affine(TensorData::from_vector(std::vector<int32_t>(4, 1), {2, 2}),
                              affine(8, AffineOffset::min, Granularity::per_channel));
            }),
            ErrorKind::dtype);
  EXPECT_EQ(kind_of([&] {
              quantize_affine(TensorData::from_vector(std::vector<float>{1, NAN}, {1, 2}),
                              affine(8, AffineOffset::min, Granularity::per_channel));
            }),
            ErrorKind::value);
  EXPECT_EQ(kind_of([&] { quantize_lookup(w, 5, Granularity::per_tensor); }), ErrorKind::value);
}

}  // namespace loom::quant
