#include "test_util.h"

namespace loom {

static int count_ops(const std::string& dump, const std::string& op) {
  int n = 0;
  for (size_t p = dump.find("= " + op); p != std::string::npos; p = dump.find("= " + op, p + 1))
    ++n;
  return n;
}

TEST(Passes, ConstantFoldingEvaluatesConstantSubgraphs) {
  Graph g;
  Tensor x = g.placeholder("x", {3});
  Tensor c = exp(g.constant(TensorData::from_vector<float>({0, 1, 2}, {3}))) + 1.0;
  Tensor y = x * c;
  CompileOptions options;
  options.outputs = {y};
  options.keep_pass_dumps = true;
  Executable exe = compile(g, options);
  std::string after = exe.dump();
  EXPECT_EQ(count_ops(after, "exp"), 0) << after;
  EXPECT_EQ(count_ops(after, "add"), 0) << after;
  auto out = exe.run({{"x", TensorData::from_vector<float>({1, 2, 3}, {3})}})[0].to_vector<float>();
  for (int i = 0; i < 3; ++i) EXPECT_NEAR(out[size_t(i)], (i + 1) * (std::exp(float(i)) + 1), 1e-4);
  // The dump before the pass still has them.
  ASSERT_GE(exe.pass_dumps().size(), 2u);
  EXPECT_EQ(exe.pass_dumps()[0].pass, "input");
  EXPECT_EQ(count_ops(exe.pass_dumps()[0].graph, "exp"), 1);
}

TEST(Passes, CseMergesIdenticalNodes) {
  Graph g;
  Tensor x = g.placeholder("x", {4});
  Tensor y = exp(x) + exp(x);
  CompileOptions options;
  options.outputs = {y};
  Executable exe = compile(g, options);
  EXPECT_EQ(count_ops(exe.dump(), "exp"), 1) << exe.dump();
  options.disabled_passes = {"common_subexpressions"};
  Executable plain = compile(g, options);
  EXPECT_EQ(count_ops(plain.dump(), "exp"), 2) << plain.dump();
  auto feed = testing::random_tensor(DType::f32, {4});
  EXPECT_EQ(exe.run({{"x", feed}})[0].to_vector<float>(),
            plain.run({{"x", feed}})[0].to_vector<float>());
}

TEST(Passes, DceRemovesUnusedNodesButKeepsAssign) {
  Graph g;
  Tensor x = g.placeholder("x", {4});
  Tensor unused = sin(x);
  (void)unused;
  Tensor v = g.variable("v", TensorData::zeros(DType::f32, {4}));
  g.assign(v, cos(x));
  Tensor y = neg(x);
  CompileOptions options;
  options.outputs = {y};
  Executable exe = compile(g, options);
  std::string d = exe.dump();
  EXPECT_EQ(count_ops(d, "sin"), 0) << d;
  EXPECT_EQ(count_ops(d, "cos"), 1) << d;
  auto feed = testing::random_tensor(DType::f32, {4});
  exe.run({{"x", feed}});
  auto stored = exe.variables().get("v").to_vector<float>();
  auto in = feed.to_vector<float>();
  for (int i = 0; i < 4; ++i) EXPECT_FLOAT_EQ(stored[size_t(i)], std::cos(in[size_t(i)]));
}

TEST(Passes, UnknownPassNameIsAnError) {
  Graph g;
  Tensor x = g.placeholder("x", {4});
  CompileOptions options;
  options.outputs = {neg(x)};
  options.disabled_passes = {"no_such_pass"};
  EXPECT_THROW(compile(g, options), Error);
}

TEST(Passes, EveryPassCanBeDisabled) {
  for (const auto& name : pass_names()) {
    Graph g;
    Tensor x = g.placeholder("x", {5});
    Tensor y = (x + g.constant(1.0) * g.constant(2.0)) * (x + g.constant(1.0) * g.constant(2.0));
    CompileOptions options;
    options.outputs = {y};
    options.disabled_passes = {name};
    Executable exe = compile(g, options);
    auto out = exe.run({{"x", TensorData::from_vector<float>({0, 1, 2, 3, 4}, {5})}});
    auto v = out[0].to_vector<float>();
    for (int i = 0; i < 5; ++i) EXPECT_FLOAT_EQ(v[size_t(i)], float((i + 2) * (i + 2))) << name;
  }
}

}  // namespace loom

namespace loom {

TEST(Passes, MatmulBiasFusesIntoTheMatmul) {
  for (DType dtype : {DType::f32, DType::bf16}) {
    Graph g;
    Tensor x = g.placeholder("x", {"rows", 5}, dtype);
    Tensor w = g.variable("w", testing::random_tensor(dtype, {5, 4}));
    Tensor b = g.variable("b", testing::random_tensor(dtype, {4}));
    Tensor y = relu(matmul(x, w) + b);
    Tensor wide = matmul(x, w) + g.constant(TensorData::zeros(dtype, {3, 4}));  // not a [N] bias
    CompileOptions options;
    options.outputs = {y, wide};
    options.disabled_passes = {"common_subexpressions"};
    Executable fused = compile(g, options);
    std::string d = fused.dump();
    EXPECT_EQ(count_ops(d, "add"), 1) << d;  // only the [3, 4] one is left
    options.disabled_passes = {"common_subexpressions", "fuse_matmul_bias"};
    Executable plain = compile(g, options);
    EXPECT_EQ(count_ops(plain.dump(), "add"), 2);
    Feeds feeds = {{"x", testing::random_tensor(dtype, {3, 5})}};
    auto got = fused.run(feeds), want = plain.run(feeds);
    for (size_t i = 0; i < 2; ++i)
      testing::expect_close(got[i], testing::to_doubles(want[i]), testing::tolerance_for(dtype));
  }
}

TEST(Passes, MatmulBiasRejectsWrongBiasShape) {
  Graph g;
  Tensor a = g.placeholder("a", {2, 3});
  Tensor b = g.placeholder("b", {3, 4});
  EXPECT_THROW(g.add_node("matmul", {a, b, g.placeholder("bias", {5})}), Error);
  EXPECT_THROW(g.add_node("matmul", {a, b, g.placeholder("bias2", {1, 4})}), Error);
}

}  // namespace loom

namespace loom {

// [1, 3, 1, 4] -> [1, 1, 3, 4] and [seq, 1, 3] -> [1, seq, 3] move only unit axes: reshapes
// (no kernel); [2, 3] -> [3, 2] and [seq, 2] -> [2, seq] (seq may be anything) stay. Values checked
// against the unoptimised graph.
TEST(Passes, TransposesOfUnitAxesBecomeReshapes) {
  Graph g;
  Tensor x = g.placeholder("x", {1, 3, 1, 4});
  Tensor m = g.placeholder("m", {2, 3});
  Tensor s = g.placeholder("s", {Dim("seq"), 1, 3});
  Tensor t = g.placeholder("t", {Dim("seq"), 2});
  Tensor unit = transpose(x, {0, 2, 1, 3});
  Tensor real = transpose(m, {1, 0});
  Tensor symbolic_unit = transpose(s, {1, 0, 2});
  Tensor symbolic = transpose(t, {1, 0});
  CompileOptions options;
  options.outputs = {unit * 2.0, real * 2.0, symbolic_unit * 2.0, symbolic * 2.0};
  Executable exe = compile(g, options);
  std::string d = exe.dump();
  EXPECT_EQ(count_ops(d, "transpose"), 2) << d;
  options.disabled_passes = {"transposes_as_reshapes"};
  Executable plain = compile(g, options);
  EXPECT_EQ(count_ops(plain.dump(), "transpose"), 4);
  Feeds feeds{{"x", testing::random_tensor(DType::f32, {1, 3, 1, 4})},
              {"m", testing::random_tensor(DType::f32, {2, 3})},
              {"s", testing::random_tensor(DType::f32, {5, 1, 3})},
              {"t", testing::random_tensor(DType::f32, {5, 2})}};
  auto a = exe.run(feeds);
  auto b = plain.run(feeds);
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].shape(), b[i].shape());
    EXPECT_EQ(a[i].to_vector<float>(), b[i].to_vector<float>()) << i;
  }
}

}  // namespace loom
