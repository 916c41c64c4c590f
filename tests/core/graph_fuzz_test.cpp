// Random multi-node graphs (chains and DAGs of random ops over tensors with a symbolic
// batch dim, constants and variables) compiled normally must give what the same graph gives
// compiled with every optional pass disabled, for several bindings of the symbol.
//
// Bit-exact: every pass here keeps the order of each element's operations (fuse_elementwise
// too: each step of a fused group rounds to its dtype as the unfused kernel does), except
// fuse_matmul_bias, which adds the bias before the matmul's result is rounded to the dtype.
// Its one rounding less is an ulp that later ops (a layer_norm of a nearly constant row, say)
// can amplify without bound, so no stated tolerance would hold for a random graph after it:
// graphs with a matmul followed by a bias keep that pass off on both sides, and the fused
// kernel's numerics are checked against the unfused graph in passes_test.cpp.
#include <cmath>
#include <random>
#include <set>

#include "test_util.h"

namespace loom {
namespace {

struct Node {
  Tensor tensor;
  int64_t width;  // the last dim; every tensor here is [batch, width] with a symbolic batch
};

class RandomGraph {
 public:
  RandomGraph(std::mt19937& gen, DType dtype) : gen_(gen), dtype_(dtype) {}

  Graph g;
  Feeds feeds_for(int64_t batch) {
    Feeds feeds;
    for (const auto& [name, width] : placeholders_)
      feeds[name] = testing::random_tensor(dtype_, {batch, width}, -2, 2);
    return feeds;
  }
  std::vector<Tensor> outputs;
  bool has_matmul_bias = false;

  void build(int ops) {
    for (int i = 1 + int(gen_() % 2); i > 0; --i) add_placeholder();
    for (int i = 0; i < ops; ++i) add_op();
    // Outputs: the last node, and a few earlier ones (others are left to dead-code removal).
    outputs.push_back(nodes_.back().tensor);
    for (size_t i = 0; i + 1 < nodes_.size(); ++i)
      if (gen_() % 4 == 0) outputs.push_back(nodes_[i].tensor);
  }

 private:
  std::mt19937& gen_;
  DType dtype_;
  std::vector<Node> nodes_;
  std::vector<std::pair<std::string, int64_t>> placeholders_;

  int64_t random_width() { return 1 + int64_t(gen_() % 6); }
  const Node& pick() {
    // Later nodes more often, so that chains grow deep; earlier ones make DAGs.
    size_t n = nodes_.size();
    size_t i = gen_() % 3 == 0 ? gen_() % n : n - 1 - gen_() % std::min<size_t>(n, 3);
    return nodes_[i];
  }
  TensorData random_data(Extents shape, float lo = -1, float hi = 1) {
    return testing::random_tensor(dtype_, std::move(shape), lo, hi);
  }
  // A [batch, width] value made of constants only when width allows: constant folding food.
  Tensor constant_row(int64_t width) {
    Tensor c = g.constant(random_data({1, width}));
    switch (gen_() % 3) {
      case 0:
        return c;
      case 1:
        return exp(c) * 0.5;
      default:
        return tanh(c + g.constant(random_data({1, width})));
    }
  }
  void add_placeholder() {
    int64_t width = random_width();
    std::string name = "x" + std::to_string(placeholders_.size());
    placeholders_.push_back({name, width});
    nodes_.push_back({g.placeholder(name, {"batch", width}, dtype_), width});
  }
  // A partner for a binary op: another node of the same width, a broadcast row, a constant
  // row or a scalar.
  Tensor partner(const Node& a) {
    for (int tries = 0; tries < 4; ++tries) {
      const Node& b = pick();
      if (b.width == a.width) return b.tensor;
    }
    switch (gen_() % 3) {
      case 0:
        return constant_row(a.width);
      case 1:
        return g.variable("v" + std::to_string(nodes_.size()), random_data({a.width}));
      default:
        return g.constant(double(int(gen_() % 7) - 3) * 0.5, dtype_);
    }
  }
  void add_op() {
    const Node a = pick();
    Tensor x = a.tensor;
    int64_t width = a.width;
    Tensor y;
    switch (gen_() % 18) {
      case 0:
        y = x + partner(a);
        break;
      case 1:
        y = x - partner(a);
        break;
      case 2:
        y = x * partner(a);
        break;
      case 3:
        y = gen_() % 2 ? maximum(x, partner(a)) : minimum(x, partner(a));
        break;
      case 4: {
        Tensor (*unary[])(const Tensor&) = {neg, abs, tanh, sigmoid, silu, relu, sin, cos};
        y = unary[gen_() % std::size(unary)](x);
        break;
      }
      case 5:
        y = gelu(x, gen_() % 2 ? GeluApproximation::tanh : GeluApproximation::none);
        break;
      case 6:
        y = gen_() % 2 ? softmax(x, -1) : log_softmax(x, -1);
        break;
      case 7:
        y = gen_() % 2 ? rms_norm(x, g.variable("w" + std::to_string(nodes_.size()),
                                                random_data({width}, 0.5f, 1.5f)))
                       : layer_norm(x);
        break;
      case 8: {
        std::vector<int64_t> axes = {-1};
        y = gen_() % 2 ? sum(x, axes, true)
                       : (gen_() % 2 ? mean(x, axes, true) : max(x, axes, true));
        width = 1;
        break;
      }
      case 9:
      case 10: {  // matmul by a weight, often followed by a bias: fuse_matmul_bias's pattern
        int64_t out = random_width();
        Tensor w = gen_() % 2
                       ? g.constant(random_data({width, out}))
                       : g.variable("m" + std::to_string(nodes_.size()), random_data({width, out}));
        y = matmul(x, w);
        if (gen_() % 2) {
          y = y + g.variable("b" + std::to_string(nodes_.size()), random_data({out}));
          has_matmul_bias = true;
        }
        width = out;
        break;
      }
      case 11: {
        const Node& b = pick();
        y = concat({x, b.tensor}, -1);
        width += b.width;
        break;
      }
      case 12: {
        if (width < 2) {
          y = x * 2.0;
          break;
        }
        int64_t start = int64_t(gen_() % uint64_t(width - 1));
        y = slice(x, {1}, {start}, {width});
        width -= start;
        break;
      }
      case 13: {  // the same op twice on the same input: common subexpressions
        y = exp(x * 0.25) + exp(x * 0.25);
        break;
      }
      case 14: {  // a round trip through another float dtype and back
        DType other = dtype_ == DType::f32 ? DType::bf16 : DType::f32;
        y = cast(cast(x, other), dtype_);
        break;
      }
      case 15:  // where and a comparison, a fused group's bool steps
        y = where(greater(x, partner(a)), x, exp(x) * 0.5);
        break;
      case 16:  // through integers and back: casts and integer steps inside a group
        y = cast(cast(x * 4.0, DType::i32) + g.constant(int64_t(3), DType::i32), dtype_);
        break;
      default:
        y = transpose(transpose(x));
        break;
    }
    nodes_.push_back({y, width});
  }
};

void expect_same(const std::vector<TensorData>& got, const std::vector<TensorData>& want,
                 const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) {
    const std::string label = what + " output " + std::to_string(i);
    ASSERT_EQ(got[i].dtype(), want[i].dtype()) << label;
    ASSERT_EQ(got[i].shape(), want[i].shape()) << label;
    {
      TensorData a = got[i].contiguous(), b = want[i].contiguous();
      std::vector<float> fa = a.to_floats(), fb = b.to_floats();
      size_t bad = 0, first = 0;
      for (size_t j = 0; j < fa.size(); ++j) {
        bool same = fa[j] == fb[j] || (std::isnan(fa[j]) && std::isnan(fb[j]));
        if (!same && bad++ == 0) first = j;
      }
      EXPECT_EQ(bad, 0u) << label << ": " << bad << " of " << fa.size()
                         << " elements differ; first at " << first << ": optimized "
                         << (bad ? fa[first] : 0) << ", unoptimized " << (bad ? fb[first] : 0);
    }
  }
}

TEST(GraphFuzz, OptimizedMatchesUnoptimized) {
  std::mt19937 gen(20261201);
  const DType dtypes[] = {DType::f32, DType::f16, DType::bf16};
  std::set<std::string> all_passes;
  for (const auto& p : pass_names())
    if (p != "verify") all_passes.insert(p);
  int compared = 0, rewritten = 0, fused = 0;
  const int graphs = 1500;
  for (int iter = 0; iter < graphs; ++iter) {
    DType dtype = dtypes[iter % 3];
    RandomGraph rg(gen, dtype);
    rg.build(2 + int(gen() % 12));
    const std::string what = "graph " + std::to_string(iter) + " (" + dtype_name(dtype) + ")";
    CompileOptions optimized, plain;
    optimized.outputs = plain.outputs = rg.outputs;
    plain.disabled_passes = all_passes;
    if (rg.has_matmul_bias) optimized.disabled_passes = {"fuse_matmul_bias"};
    Executable a = compile(rg.g, optimized), b = compile(rg.g, plain);
    if (a.dump() != b.dump()) ++rewritten;
    if (a.dump().find(" fused(") != std::string::npos) ++fused;
    for (int64_t batch : {int64_t(1 + gen() % 5), int64_t(0), int64_t(3 + gen() % 9)}) {
      Feeds feeds = rg.feeds_for(batch);
      auto got = a.run(feeds), want = b.run(feeds);
      expect_same(got, want, what + " batch " + std::to_string(batch));
      ++compared;
      if (::testing::Test::HasFailure()) {
        ADD_FAILURE() << what << " as optimized:\n" << a.dump() << "\nunoptimized:\n" << b.dump();
        return;
      }
    }
  }
  EXPECT_EQ(compared, 3 * graphs);
  // The passes must have had something to do, or the comparison proves nothing.
  EXPECT_GT(rewritten, graphs / 2);
  // fuse_elementwise among them: most graphs here hold a group of elementwise ops.
  EXPECT_GT(fused, graphs / 3);
}

}  // namespace
}  // namespace loom
