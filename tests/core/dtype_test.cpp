#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "loom/loom.h"

static std::vector<float> testing_run(const loom::Graph& g, loom::Tensor y, loom::TensorData x) {
  loom::CompileOptions options;
  options.outputs = {y};
  return loom::compile(g, options).run({{"x", x}})[0].to_vector<float>();
}

namespace loom {

TEST(DType, TableDescribesEveryDtype) {
  for (int i = 0; i < kDTypeCount; ++i) {
    const auto& info = dtype_info(DType(i));
    EXPECT_EQ(int(info.dtype), i);
    EXPECT_EQ(dtype_from_name(info.name), info.dtype);
  }
  EXPECT_EQ(storage_bytes(DType::f32, 3), 12u);
  EXPECT_EQ(storage_bytes(DType::i4, 3), 2u);  // packed two per byte, rounded up
  EXPECT_EQ(storage_bytes(DType::bf16, 5), 10u);
  EXPECT_TRUE(is_packed(DType::u4));
  EXPECT_FALSE(is_packed(DType::i8));
}

TEST(DType, UnknownNameIsAnError) {
  try {
    dtype_from_name("f31");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::dtype);
    EXPECT_NE(std::string(e.what()).find("f31"), std::string::npos);
  }
}

// f16 and bf16 conversion against the exact rounding computed in double.
TEST(DType, HalfConversionsRoundToNearestEven) {
  std::mt19937 gen(1);
  std::uniform_real_distribution<float> dist(-70000.f, 70000.f);
  for (int i = 0; i < 20000; ++i) {
    float f = i < 10000 ? dist(gen) : dist(gen) * 1e-6f;
    float h = f16_to_float(float_to_f16(f));
    // The nearest f16 neighbours bracket f; the result must be the closer one.
    if (std::fabs(f) < 65504.f) {
      double err = std::fabs(double(h) - double(f));
      double ulp = std::fabs(double(f16_to_float(uint16_t(float_to_f16(f) + 1))) - double(h));
      EXPECT_LE(err, ulp / 2 + 1e-12) << f;
    }
    float b = bf16_to_float(float_to_bf16(f));
    EXPECT_LE(std::fabs(double(b) - double(f)), std::fabs(double(f)) * (1.0 / 256) + 1e-30) << f;
  }
  EXPECT_EQ(f16_to_float(float_to_f16(1.0f)), 1.0f);
  EXPECT_TRUE(std::isinf(f16_to_float(float_to_f16(1e6f))));
  EXPECT_TRUE(std::isnan(f16_to_float(float_to_f16(NAN))));
  EXPECT_TRUE(std::isnan(bf16_to_float(float_to_bf16(NAN))));
  EXPECT_EQ(f16_to_float(0x0001), std::ldexp(1.0f, -24));  // smallest subnormal
}

TEST(TensorData, RoundTripsAndViews) {
  auto t = TensorData::from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 3});
  EXPECT_TRUE(t.is_contiguous());
  auto tr = t.view({3, 2}, {1, 3}, 0);  // transposed view
  EXPECT_FALSE(tr.is_contiguous());
  EXPECT_EQ(tr.contiguous().to_vector<float>(), (std::vector<float>{1, 4, 2, 5, 3, 6}));
  EXPECT_THROW(t.view({3, 3}, {3, 1}, 0), Error);  // reaches past the buffer
  EXPECT_THROW(TensorData::from_vector<float>({1, 2, 3}, {2, 2}), Error);
  EXPECT_THROW(t.to_vector<int32_t>(), Error);
  auto h = TensorData::from_floats({1.5f, -2.25f}, DType::bf16, {2});
  EXPECT_EQ(h.to_floats(), (std::vector<float>{1.5f, -2.25f}));
}

TEST(Shape, SymbolsAndAxes) {
  Shape s = {"seq", 64};
  EXPECT_FALSE(is_static(s));
  EXPECT_EQ(to_string(s), "[seq, 64]");
  EXPECT_THROW(static_extents(s), Error);
  EXPECT_EQ(normalize_axis(-1, 3, "op"), 2);
  EXPECT_THROW(normalize_axis(3, 3, "op"), Error);
  EXPECT_EQ(Device::parse("cuda:1").index, 1);
  EXPECT_THROW(Device::parse("tpu"), Error);
}

}  // namespace loom

namespace loom {

TEST(TensorData, ConversionsFollowCastRules) {
  EXPECT_EQ(TensorData::scalar(16777217.0, DType::i32).to_vector<int32_t>()[0], 16777217);
  EXPECT_EQ(TensorData::scalar(3e12, DType::i64).to_vector<int64_t>()[0], int64_t(3e12));
  auto u8 = TensorData::from_floats({-1.f, 300.f, NAN, 7.9f}, DType::u8, {4});
  EXPECT_EQ(u8.to_vector<uint8_t>(), (std::vector<uint8_t>{0, 255, 0, 7}));
  auto flags = TensorData::from_floats({0.f, 2.f, NAN}, DType::boolean, {3});
  EXPECT_EQ(flags.to_vector<bool>(), (std::vector<bool>{false, true, true}));
}

TEST(Graph, ScalarOnEitherSide) {
  Graph g;
  Tensor x = g.placeholder("x", {3});
  Tensor y = (2.0 * x + 1.0) / (10.0 - x) - (1.0 / x);
  auto out = testing_run(g, y, TensorData::from_vector<float>({1, 2, 4}, {3}));
  std::vector<float> want = {3.f / 9 - 1, 5.f / 8 - 0.5f, 9.f / 6 - 0.25f};
  for (int i = 0; i < 3; ++i) EXPECT_FLOAT_EQ(out[size_t(i)], want[size_t(i)]);
}

}  // namespace loom
