// Inputs at the edges: late placeholders, swapped variables, huge shapes, empty tensors,
// integer overflow. Each of these once gave a wrong result or a crash.
#include "test_util.h"

namespace loom {

TEST(EdgeCases, PlaceholderDeclaredAfterOpsKeepsItsOwnMemory) {
  Graph g;
  Tensor x = g.placeholder("x", {4});
  Tensor a = neg(exp(neg(x)));
  Tensor y = g.placeholder("y", {4});
  auto out = testing::run_once(g, {a + y},
                               {{"x", TensorData::from_vector<float>({1, 2, 3, 4}, {4})},
                                {"y", TensorData::from_vector<float>({10, 20, 30, 40}, {4})}});
  auto v = out[0].to_vector<float>();
  for (int i = 0; i < 4; ++i) EXPECT_FLOAT_EQ(v[size_t(i)], -std::exp(-(i + 1.f)) + 10.f * (i + 1));
}

TEST(EdgeCases, AssignsSwapVariables) {
  Graph g;
  Tensor a = g.variable("a", TensorData::from_vector<float>({1}, {1}));
  Tensor b = g.variable("b", TensorData::from_vector<float>({2}, {1}));
  g.assign(a, g.read(b));
  g.assign(b, g.read(a));
  CompileOptions options;
  options.outputs = {g.read(b)};
  Executable exe = compile(g, options);
  EXPECT_EQ(exe.run({})[0].to_vector<float>()[0], 2.f);  // reads see the value before the run
  EXPECT_EQ(exe.variables().get("a").to_vector<float>()[0], 2.f);
  EXPECT_EQ(exe.variables().get("b").to_vector<float>()[0], 1.f);
  exe.run({});
  EXPECT_EQ(exe.variables().get("a").to_vector<float>()[0], 1.f);
  EXPECT_EQ(exe.variables().get("b").to_vector<float>()[0], 2.f);
}

TEST(EdgeCases, ConstantIsACopyOfTheCallersData) {
  auto data = TensorData::from_vector<float>({1, 2, 3}, {3});
  Graph g;
  Tensor x = g.placeholder("x", {3});
  Tensor y = x + g.constant(data);
  static_cast<float*>(data.data())[0] = 100;
  auto out = testing::run_once(g, {y}, {{"x", TensorData::zeros(DType::f32, {3})}});
  EXPECT_EQ(out[0].to_vector<float>(), (std::vector<float>{1, 2, 3}));
}

TEST(EdgeCases, HugeShapesAreErrorsNotCrashes) {
  const int64_t big = int64_t(1) << 32;
  Graph g;
  EXPECT_THROW(g.placeholder("x", {big, big}), Error);
  Tensor z = g.placeholder("z", {0});
  EXPECT_THROW(reshape(z, {big, big}), Error);
  EXPECT_THROW(TensorData::empty(DType::f32, {big, big}), Error);
  EXPECT_THROW(numel({-1, 2}), Error);
  auto t = TensorData::from_vector<float>({1, 2}, {2});
  EXPECT_THROW(t.view({2}, {int64_t(1) << 62}, 0), Error);
  float storage[4] = {};
  EXPECT_THROW(
      TensorData::wrap(storage, DType::f32, {3}, {int64_t(1) << 62}, Device::cpu(), nullptr),
      Error);
}

TEST(EdgeCases, EmptyLastDimInRope) {
  Graph g;
  Tensor x = g.placeholder("x", {1, 3, 0});
  Tensor offset = g.placeholder("offset", {}, DType::i32);
  auto out = testing::run_once(g, {rope(x, offset)},
                               {{"x", TensorData::zeros(DType::f32, {1, 3, 0})},
                                {"offset", TensorData::scalar(0, DType::i32)}});
  EXPECT_EQ(out[0].numel(), 0);
}

TEST(EdgeCases, IntegerSumWrapsAndArangeSaturates) {
  Graph g;
  Tensor x = g.placeholder("x", {2}, DType::i64);
  auto out = testing::run_once(g, {sum(x), arange(g, 0, 300, 1, DType::i8)},
                               {{"x", TensorData::from_vector<int64_t>({INT64_MAX, 1}, {2})}});
  EXPECT_EQ(out[0].to_vector<int64_t>()[0], INT64_MIN);
  auto r = out[1].to_vector<int8_t>();
  ASSERT_EQ(r.size(), 300u);
  EXPECT_EQ(r[100], 100);
  EXPECT_EQ(r[200], 127);
}

TEST(EdgeCases, PackedViewsMustBeByteAligned) {
  auto t = TensorData::zeros(DType::u4, {8});
  EXPECT_THROW(t.view({4}, {1}, 1), Error);
  EXPECT_NO_THROW(t.view({4}, {1}, 2));
}

}  // namespace loom
