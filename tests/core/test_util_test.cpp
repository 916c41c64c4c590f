// The comparison the other tests rely on (test_util.h): elementwise, so that a few wrong
// elements among many, or a wrong small value next to large ones, fail.
#include "test_util.h"

#include <gtest/gtest-spi.h>

namespace loom {
namespace {

using testing::expect_close;
using testing::tolerance_for;

TEST(ExpectClose, TenWrongElementsAmongManyFail) {
  // A relative-L2 check at bf16's 1.6e-2 let about ten completely wrong elements through in
  // 65k; elementwise, one is enough.
  TensorData x = testing::random_tensor(DType::bf16, {256, 256});
  std::vector<double> want = testing::to_doubles(x);
  expect_close(x, want, tolerance_for(DType::bf16), "same values");
  for (size_t i = 0; i < 10; ++i) want[i * 6007] += 1.0;
  EXPECT_NONFATAL_FAILURE(expect_close(x, want, tolerance_for(DType::bf16)), "10 of 65536");
}

TEST(ExpectClose, ReportsTheWorstElement) {
  TensorData x = TensorData::from_vector<float>({1, 2, 3, 4}, {4});
  EXPECT_NONFATAL_FAILURE(expect_close(x, {1, 2.5, 3.001, 4}, tolerance_for(DType::f32)),
                          "worst at flat index 1");
}

TEST(ExpectClose, SmallValuesAreCheckedToo) {
  // Softmax-like outputs: one probability a hundred times too large next to large ones.
  TensorData x = TensorData::from_vector<float>({0.9f, 0.09f, 1e-3f, 9e-3f}, {4});
  EXPECT_NONFATAL_FAILURE(expect_close(x, {0.9, 0.09, 1e-5, 9e-3}, tolerance_for(DType::f32)),
                          "1 of 4");
}

TEST(ExpectClose, NanOnlyMatchesNanAndInfinityItself) {
  TensorData x = TensorData::from_vector<float>({NAN, INFINITY, -INFINITY, 1}, {4});
  expect_close(x, {NAN, INFINITY, -INFINITY, 1}, tolerance_for(DType::f32));
  EXPECT_NONFATAL_FAILURE(expect_close(x, {0, INFINITY, -INFINITY, 1}, tolerance_for(DType::f32)),
                          "1 of 4");
  EXPECT_NONFATAL_FAILURE(
      expect_close(x, {NAN, -INFINITY, -INFINITY, 1}, tolerance_for(DType::f32)), "1 of 4");
  EXPECT_NONFATAL_FAILURE(
      expect_close(x, {NAN, INFINITY, -INFINITY, NAN}, tolerance_for(DType::f32)), "1 of 4");
  EXPECT_NONFATAL_FAILURE(expect_close(x, {NAN, 1e30, -INFINITY, 1}, tolerance_for(DType::f32)),
                          "1 of 4");
}

TEST(ExpectClose, ToleranceIsAtolPlusRtolTimesWant) {
  TensorData x = TensorData::from_vector<float>({101, 0.5f}, {2});
  expect_close(x, {100, 0.5}, {0.01, 0});    // |1| <= 0.01 * 100
  expect_close(x, {100.5, 0.51}, {0, 0.5});  // within atol
  EXPECT_NONFATAL_FAILURE(expect_close(x, {100, 0.5}, {0.009, 0}), "1 of 2");
  // Integers: exact.
  TensorData i = TensorData::from_vector<int32_t>({3}, {1});
  EXPECT_NONFATAL_FAILURE(expect_close(i, {4}, tolerance_for(DType::i32)), "1 of 1");
}

TEST(AccumulationTolerance, GrowsWithTheNumberOfTerms) {
  auto small = testing::accumulation_tolerance(DType::f32, 16);
  auto large = testing::accumulation_tolerance(DType::f32, 4096);
  EXPECT_GT(large.rtol, small.rtol);
  EXPECT_GT(large.atol, small.atol);
  EXPECT_GE(small.rtol, tolerance_for(DType::f32).rtol);
  // Still far below what a wrong result would need: 4096 terms of 1 at f32.
  EXPECT_LT(large.atol, 1e-2);
}

}  // namespace
}  // namespace loom
