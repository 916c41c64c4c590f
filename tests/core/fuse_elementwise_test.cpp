// The fuse_elementwise pass and the CPU kernel of `fused`: graphs compiled with the pass give
// the bits of the same graphs compiled without it (every step rounds as the unfused kernels
// round, so f16 and bf16 are bit-exact too), one fused node replaces each group, values read
// outside a group are outputs of its node (computed once, never dropped), and the pass can be
// turned off by name. Random graphs are covered by graph_fuzz_test.cpp.
#include <cstring>
#include <regex>

#include "ops/fused_expression.h"
#include "test_util.h"

namespace loom {
namespace {

int count_of(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// Fused nodes in an executable's dump ("%12 fused(...)"): the op name after the node id.
int fused_nodes(const Executable& e) { return count_of(e.dump(), " fused("); }

void expect_bits_equal(const TensorData& got, const TensorData& want, const std::string& what) {
  ASSERT_EQ(got.dtype(), want.dtype()) << what;
  ASSERT_EQ(got.shape(), want.shape()) << what;
  const TensorData a = got.contiguous(), b = want.contiguous();
  EXPECT_EQ(std::memcmp(a.data(), b.data(), a.nbytes()), 0) << what << ": bytes differ";
}

struct Compared {
  Executable fused, plain;
};

// Runs `outputs` of `g` with and without the pass on `feeds` and expects the same bytes.
Compared expect_fusion_exact(const Graph& g, const std::vector<Tensor>& outputs,
                             const Feeds& feeds) {
  CompileOptions on, off;
  on.outputs = off.outputs = outputs;
  off.disabled_passes = {"fuse_elementwise"};
  Compared c{compile(g, on), compile(g, off)};
  const auto got = c.fused.run(feeds), want = c.plain.run(feeds);
  EXPECT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size() && i < want.size(); ++i)
    expect_bits_equal(got[i], want[i], "output " + std::to_string(i));
  return c;
}

class FuseElementwiseDTypes : public ::testing::TestWithParam<DType> {};

TEST_P(FuseElementwiseDTypes, ChainBecomesOneKernel) {
  const DType dt = GetParam();
  Graph g;
  Tensor x = g.placeholder("x", {"batch", 37}, dt);
  Tensor y = g.placeholder("y", {"batch", 37}, dt);
  Tensor t = tanh(exp(x * 0.5) + y) - sigmoid(y) / (abs(x) + 1.0);
  t = maximum(silu(t), gelu(x, GeluApproximation::tanh)) * rsqrt(abs(y) + 0.25);
  for (int64_t batch : {1, 5, 300}) {
    Feeds feeds{{"x", testing::random_tensor(dt, {batch, 37}, -3, 3)},
                {"y", testing::random_tensor(dt, {batch, 37}, -3, 3)}};
    Compared c = expect_fusion_exact(g, {t}, feeds);
    EXPECT_EQ(fused_nodes(c.fused), 1) << c.fused.dump();
    EXPECT_EQ(c.fused.last_run_stats().kernels, 1u) << c.fused.dump();
  }
}

INSTANTIATE_TEST_SUITE_P(Floats, FuseElementwiseDTypes,
                         ::testing::Values(DType::f32, DType::f16, DType::bf16),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

TEST(FuseElementwise, BroadcastingOperands) {
  Graph g;
  Tensor x = g.placeholder("x", {4, 1, 8}, DType::f32);
  Tensor row = g.placeholder("row", {3, 1}, DType::f32);
  Tensor col = g.placeholder("col", {8}, DType::f32);
  Tensor s = g.placeholder("s", {1, 1, 1}, DType::f32);
  Tensor y = exp(x + row) * col - s;  // [4, 3, 8]
  Feeds feeds{{"x", testing::random_tensor(DType::f32, {4, 1, 8})},
              {"row", testing::random_tensor(DType::f32, {3, 1})},
              {"col", testing::random_tensor(DType::f32, {8})},
              {"s", testing::random_tensor(DType::f32, {1, 1, 1})}};
  Compared c = expect_fusion_exact(g, {y}, feeds);
  EXPECT_EQ(fused_nodes(c.fused), 1) << c.fused.dump();
  // Against a naive reference too, so that both sides cannot share a broadcasting bug.
  const auto got = c.fused.run(feeds)[0].to_vector<float>();
  const auto xv = feeds["x"].to_vector<float>(), rv = feeds["row"].to_vector<float>(),
             cv = feeds["col"].to_vector<float>(), sv = feeds["s"].to_vector<float>();
  ASSERT_EQ(got.size(), 96u);
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 8; ++k) {
        // Loom's exp is within 4 ulp of libm's (backends/cpu/exp_f32.h), not libm's bits.
        const float e = std::exp(xv[size_t(i * 8 + k)] + rv[size_t(j)]) * cv[size_t(k)];
        const float want = e - sv[0];
        EXPECT_NEAR(got[size_t((i * 3 + j) * 8 + k)], want, 1e-6 * (std::abs(e) + std::abs(sv[0])))
            << i << "," << j << "," << k;
      }
}

// Enough blocks for the threaded path, a partial last block, and inputs read every way:
// in place (f32, i32), converted (f16, bool), broadcast along rows and columns.
TEST(FuseElementwise, LargeOddShapesOnThreads) {
  Graph g;
  const int64_t rows = 389, cols = 517;  // 201113 elements: 99 blocks and a partial one
  Tensor a = g.placeholder("a", {rows, cols}, DType::f32);
  Tensor h = g.placeholder("h", {rows, 1}, DType::f16);
  Tensor k = g.placeholder("k", {cols}, DType::i32);
  Tensor m = g.placeholder("m", {rows, cols}, DType::boolean);
  Tensor t = where(m, a * cast(h, DType::f32), cast(k, DType::f32) - a);
  Tensor ints = cast(t * 10.0, DType::i32) + k;
  Tensor half = cast(exp(t * 0.1), DType::f16) * h;
  Feeds feeds{{"a", testing::random_tensor(DType::f32, {rows, cols}, -3, 3)},
              {"h", testing::random_tensor(DType::f16, {rows, 1}, -2, 2)},
              {"k", testing::random_tensor(DType::i32, {cols}, -100, 100)},
              {"m", testing::random_tensor(DType::boolean, {rows, cols}, 0, 2)}};
  Compared c = expect_fusion_exact(g, {t, ints, half}, feeds);
  EXPECT_EQ(fused_nodes(c.fused), 1) << c.fused.dump();
}

TEST(FuseElementwise, WhereCompareCastAndIntegers) {
  Graph g;
  Tensor x = g.placeholder("x", {"n"}, DType::f32);
  Tensor y = g.placeholder("y", {"n"}, DType::f32);
  Tensor big = where(greater(x, y), x * 2.0, y - x);
  Tensor as_int = cast(big * 1000.0, DType::i32);
  // Integer rules inside a group: wrapping products, division by zero gives 0.
  Tensor wrapped = as_int * g.constant(int64_t(123456789), DType::i32);
  Tensor divided = div(as_int, cast(less(x, y), DType::i32));
  Tensor flags = equal(cast(greater(x, g.constant(0.0, DType::f32)), DType::i8),
                       cast(less(y, g.constant(0.0, DType::f32)), DType::i8));
  Tensor half = cast(cast(big, DType::f16) * g.constant(3.0, DType::f16), DType::bf16);
  Tensor bytes = cast(big * 100.0, DType::u8) + g.constant(int64_t(200), DType::u8);
  Feeds feeds;
  feeds["x"] = testing::random_tensor(DType::f32, {1000}, -50, 50);
  feeds["y"] = testing::random_tensor(DType::f32, {1000}, -50, 50);
  Compared c = expect_fusion_exact(g, {wrapped, divided, flags, half, bytes}, feeds);
  // flags shares no node with the rest (only the placeholders): a group of its own.
  EXPECT_EQ(fused_nodes(c.fused), 2) << c.fused.dump();
  // The literal 123456789 reached the expression exactly.
  EXPECT_NE(c.fused.dump().find("123456789:i32"), std::string::npos) << c.fused.dump();
}

TEST(FuseElementwise, ScalarConstantsBecomeLiterals) {
  Graph g;
  Tensor x = g.placeholder("x", {16}, DType::f32);
  Tensor y = (x + 0.1) * g.constant(-0.0, DType::f32) + exp(x) / 3.0;
  Compared c = expect_fusion_exact(g, {y}, {{"x", testing::random_tensor(DType::f32, {16})}});
  const std::string dump = c.fused.dump();
  EXPECT_EQ(fused_nodes(c.fused), 1) << dump;
  EXPECT_NE(dump.find("0.100000001:f32"), std::string::npos) << dump;  // 0.1 as a float
  EXPECT_NE(dump.find("-0:f32"), std::string::npos) << dump;           // the sign of zero kept
  EXPECT_EQ(count_of(dump, " constant"), 0) << "inlined constants stay in the program\n" << dump;
}

TEST(FuseElementwise, GroupFeedingTwoConsumersComputesItOnce) {
  Graph g;
  Tensor x = g.placeholder("x", {64}, DType::f32);
  Tensor w = g.placeholder("w", {64, 8}, DType::f32);
  Tensor shared = exp(x * 0.5);  // read by two members and by a matmul outside the group
  Tensor a = shared + 1.0, b = shared * shared;
  Tensor m = matmul(reshape(shared, {1, 64}), w);
  Feeds feeds{{"x", testing::random_tensor(DType::f32, {64})},
              {"w", testing::random_tensor(DType::f32, {64, 8})}};
  Compared c = expect_fusion_exact(g, {a, b, m}, feeds);
  EXPECT_EQ(fused_nodes(c.fused), 1) << c.fused.dump();
  // fused (x*0.5, exp, +1, *) and the matmul; the reshape moves no bytes.
  EXPECT_EQ(c.fused.last_run_stats().kernels, 2u) << c.fused.dump();
}

TEST(FuseElementwise, IntermediateThatIsAlsoAnOutput) {
  Graph g;
  Tensor x = g.placeholder("x", {"n", 3}, DType::bf16);
  Tensor mid = x * 2.0 + 1.0;
  Tensor last = tanh(mid) * mid;
  for (auto outputs : {std::vector<Tensor>{last, mid}, std::vector<Tensor>{mid, last, mid}}) {
    Compared c =
        expect_fusion_exact(g, outputs, {{"x", testing::random_tensor(DType::bf16, {7, 3})}});
    EXPECT_EQ(fused_nodes(c.fused), 1) << c.fused.dump();
    EXPECT_EQ(c.fused.last_run_stats().kernels, 1u) << c.fused.dump();
    // One node with two outputs: each value computed once, neither dropped.
    EXPECT_NE(c.fused.dump().find("return t"), std::string::npos);
    EXPECT_EQ(c.fused.run({{"x", testing::random_tensor(DType::bf16, {7, 3})}}).size(),
              outputs.size());
  }
}

TEST(FuseElementwise, ReaderOutsideTheGroupSplitsIt) {
  // b reads a and sum(a): sum closes a's group before b, so b cannot join it (the fused node
  // would need sum's result, which needs the fused node).
  Graph g;
  Tensor x = g.placeholder("x", {5, 6}, DType::f32);
  Tensor a = exp(x) * 0.5;
  Tensor s = sum(a, {-1}, true);
  Tensor b = (a * s) + tanh(a);
  Compared c = expect_fusion_exact(g, {b}, {{"x", testing::random_tensor(DType::f32, {5, 6})}});
  EXPECT_EQ(fused_nodes(c.fused), 2) << c.fused.dump();
}

TEST(FuseElementwise, DifferentShapesStayApart) {
  Graph g;
  Tensor x = g.placeholder("x", {4, 1}, DType::f32);
  Tensor y = g.placeholder("y", {4, 8}, DType::f32);
  Tensor small = exp(x) * 2.0;  // [4, 1]: computed once, not once per column
  Tensor wide = small + y - tanh(y);
  Compared c = expect_fusion_exact(g, {wide},
                                   {{"x", testing::random_tensor(DType::f32, {4, 1})},
                                    {"y", testing::random_tensor(DType::f32, {4, 8})}});
  EXPECT_EQ(fused_nodes(c.fused), 2) << c.fused.dump();
}

// One cheap op of a smaller shape read only by the group (a reduction's result scaled, as in
// `y * c + sum(y) * eps`) joins it: the update is one kernel, evaluating the scale per element
// with the same roundings, so the bits are those of the unfused graph. Read by anything else,
// it stays apart (computed once, its own output).
TEST(FuseElementwise, CheapSmallerProducerJoinsItsOnlyReader) {
  for (bool shared : {false, true}) {
    Graph g;
    Tensor y = g.placeholder("y", {64, 256}, DType::f32);
    Tensor c = g.placeholder("c", {256}, DType::f32);
    Tensor s = sum(y, {-1}, true);  // [64, 1]
    Tensor scaled = s * 2.5e-6;
    Tensor out = y * c + scaled;
    const std::vector<Tensor> outputs =
        shared ? std::vector<Tensor>{out, scaled + 1.0} : std::vector<Tensor>{out};
    Compared cmp = expect_fusion_exact(g, outputs,
                                       {{"y", testing::random_tensor(DType::f32, {64, 256})},
                                        {"c", testing::random_tensor(DType::f32, {256})}});
    const std::string dump = cmp.fused.dump();
    EXPECT_EQ(fused_nodes(cmp.fused), 1) << dump;
    // sum, then the fused update; shared: the scale and the other reader's add run apart.
    EXPECT_EQ(cmp.fused.last_run_stats().kernels, shared ? 4u : 2u) << dump;
  }
}

TEST(FuseElementwise, TurnedOffByName) {
  Graph g;
  Tensor x = g.placeholder("x", {8}, DType::f32);
  Tensor y = exp(x) + 1.0;
  CompileOptions off;
  off.outputs = {y};
  off.disabled_passes = {"fuse_elementwise"};
  Executable e = compile(g, off);
  EXPECT_EQ(fused_nodes(e), 0) << e.dump();
  const auto names = pass_names();
  EXPECT_NE(std::find(names.begin(), names.end(), "fuse_elementwise"), names.end());
  CompileOptions on;
  on.outputs = {y};
  on.keep_pass_dumps = true;
  Executable f = compile(g, on);
  bool seen = false;
  for (const auto& d : f.pass_dumps())
    if (d.pass == "fuse_elementwise") seen = d.graph.find(" fused(") != std::string::npos;
  EXPECT_TRUE(seen);
}

TEST(FuseElementwise, LongChainIsOneNode) {
  Graph g;
  Tensor x = g.placeholder("x", {1024}, DType::f32);
  Tensor t = x;
  for (int i = 0; i < 200; ++i) t = i % 2 ? t * 0.999 : t + 0.001;
  Compared c = expect_fusion_exact(g, {t}, {{"x", testing::random_tensor(DType::f32, {1024})}});
  EXPECT_EQ(fused_nodes(c.fused), 1);
  EXPECT_EQ(c.fused.last_run_stats().kernels, 1u);
  EXPECT_EQ(c.plain.last_run_stats().kernels, 200u);
}

TEST(FuseElementwise, UsersCannotMakeFusedNodes) {
  Graph g;
  Tensor x = g.placeholder("x", {2}, DType::f32);
  std::string message;
  EXPECT_EQ(
      testing::error_kind(
          [&] {
            g.add_node1("fused", {x}, Attributes{{"expression", "t0:f32 = exp(x0); return t0"}});
          },
          &message),
      ErrorKind::value);
  EXPECT_NE(message.find("internal"), std::string::npos) << message;
}

TEST(FusedExpression, TextRoundTripsAndBadTextIsAnError) {
  const std::string text =
      "t0:f32 = add(x0, 0.5:f32); t1:bool = greater(t0, x1); t2:f32 = where(t1, t0, -inf:f32); "
      "t3:i64 = cast(t2); t4:i64 = mul(t3, -9223372036854775808:i64); return t4, t1";
  const ops::FusedExpression e = ops::FusedExpression::parse(text);
  EXPECT_EQ(e.str(), text);
  EXPECT_NO_THROW(e.check({DType::f32, DType::f32}));
  EXPECT_EQ(testing::error_kind([&] { e.check({DType::f32, DType::f16}); }), ErrorKind::dtype);
  for (const char* bad : {"", "t0:f32 = exp(x0)", "t0:f32 = nope(x0); return t0",
                          "t0:f32 = exp(t0); return t0", "t1:f32 = exp(x0); return t1",
                          "t0:f32 = add(x0, 1.5x:f32); return t0", "t0:f32 = exp(x0); return t3"}) {
    const ErrorKind kind =
        testing::error_kind([&] { ops::FusedExpression::parse(bad).check({DType::f32}); });
    EXPECT_TRUE(kind == ErrorKind::value || kind == ErrorKind::dtype) << bad;
  }
}

}  // namespace
}  // namespace loom
