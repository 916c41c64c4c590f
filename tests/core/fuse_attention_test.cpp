// fuse_attention: decomposed attention graphs (as imported models write them) against the same
// graph compiled with the pass off, on the CPU; the fused graph must hold exactly one
// scaled_dot_product_attention and no softmax, and graphs the pass must leave alone keep theirs.
#include <cmath>
#include <limits>

#include "core/kernel_test_hooks.h"
#include "loom/attention.h"
#include "test_util.h"

namespace loom {
namespace {

int count_ops(const std::string& dump, const std::string& op) {
  int n = 0;
  for (size_t p = dump.find("= " + op + "("); p != std::string::npos;
       p = dump.find("= " + op + "(", p + 1))
    ++n;
  return n;
}

enum class ScaleAt { none, q, k, scores };
enum class ScaleBy { mul, mul_left, div };
enum class Mask { none, rows, keys, boolean };         // [1, 1, Sq, Skv], [B, 1, 1, Skv], where
enum class KForm { transpose, transpose_b, permute };  // kᵀ as transpose, matmul flag, [B,S,H,D]

struct Variant {
  DType dtype = DType::f32;
  int64_t batch = 2, q_heads = 4, kv_heads = 4, q_len = 5, kv_len = 7, dim = 8;
  ScaleAt scale_at = ScaleAt::scores;
  ScaleBy scale_by = ScaleBy::mul;
  bool default_scale = true;  // 1/sqrt(D), else 0.3
  Mask mask = Mask::none;
  KForm k_form = KForm::transpose;

  std::string str() const {
    return std::string(dtype_name(dtype)) + " B" + std::to_string(batch) + " Hq" +
           std::to_string(q_heads) + " Hkv" + std::to_string(kv_heads) + " Sq" +
           std::to_string(q_len) + " Skv" + std::to_string(kv_len) + " D" + std::to_string(dim) +
           " scale_at " + std::to_string(int(scale_at)) + " by " + std::to_string(int(scale_by)) +
           (default_scale ? " 1/sqrt(D)" : " 0.3") + " mask " + std::to_string(int(mask)) +
           " k_form " + std::to_string(int(k_form));
  }
};

struct Built {
  Graph g;
  Tensor y;
  Feeds feeds;
};

Tensor scaled(const Tensor& x, const Variant& c, double s) {
  Tensor sc = graph_of(x).constant(c.scale_by == ScaleBy::div ? 1.0 / s : s, c.dtype);
  switch (c.scale_by) {
    case ScaleBy::mul:
      return x * sc;
    case ScaleBy::mul_left:
      return sc * x;
    default:
      return x / sc;
  }
}

// k or v [B, Hkv, S, D] repeated to [B, Hq, S, D] as HF's repeat_kv does.
Tensor repeat_heads(const Tensor& x, const Variant& c, int64_t len) {
  if (c.kv_heads == c.q_heads) return x;
  const int64_t groups = c.q_heads / c.kv_heads;
  Tensor x5 = reshape(x, {c.batch, c.kv_heads, 1, len, c.dim});
  Tensor wide = broadcast_to(x5, {c.batch, c.kv_heads, groups, len, c.dim});
  return reshape(wide, {c.batch, c.q_heads, len, c.dim});
}

TensorData random_mask(const Variant& c, Extents shape, bool boolean) {
  // Key 0 always visible (no row is all masked), about one key in five hidden.
  auto r = testing::random_tensor(DType::f32, shape, 0.f, 1.f).to_floats();
  std::vector<float> m(r.size());
  const int64_t keys = shape.back();
  for (size_t i = 0; i < r.size(); ++i) {
    const bool hidden = r[i] < 0.2f && int64_t(i) % keys != 0;
    m[i] = boolean ? (hidden ? 0.f : 1.f) : (hidden ? -INFINITY : 4.f * r[i] - 2.f);
  }
  return TensorData::from_floats(m, boolean ? DType::boolean : c.dtype, std::move(shape));
}

std::unique_ptr<Built> build(const Variant& c) {
  auto b = std::make_unique<Built>();
  Graph& g = b->g;
  const DType t = c.dtype;
  const double s = c.default_scale ? 1.0 / std::sqrt(double(c.dim)) : 0.3;
  Tensor q = g.placeholder("q", {c.batch, c.q_heads, c.q_len, c.dim}, t);
  b->feeds["q"] = testing::random_tensor(t, {c.batch, c.q_heads, c.q_len, c.dim});
  Tensor k, v = g.placeholder("v", {c.batch, c.kv_heads, c.kv_len, c.dim}, t);
  b->feeds["v"] = testing::random_tensor(t, {c.batch, c.kv_heads, c.kv_len, c.dim});
  if (c.k_form == KForm::permute) {
    Tensor k_rows = g.placeholder("k", {c.batch, c.kv_len, c.kv_heads, c.dim}, t);
    b->feeds["k"] = testing::random_tensor(t, {c.batch, c.kv_len, c.kv_heads, c.dim});
    k = permute(k_rows, {0, 2, 1, 3});
  } else {
    k = g.placeholder("k", {c.batch, c.kv_heads, c.kv_len, c.dim}, t);
    b->feeds["k"] = testing::random_tensor(t, {c.batch, c.kv_heads, c.kv_len, c.dim});
  }
  if (c.scale_at == ScaleAt::q) q = scaled(q, c, s);
  if (c.scale_at == ScaleAt::k) k = scaled(k, c, s);
  k = repeat_heads(k, c, c.kv_len);
  v = repeat_heads(v, c, c.kv_len);
  Tensor scores = c.k_form == KForm::transpose_b ? matmul(q, k, false, true)
                                                 : matmul(q, transpose(k, {0, 1, 3, 2}));
  if (c.scale_at == ScaleAt::scores) scores = scaled(scores, c, s);
  if (c.mask == Mask::rows || c.mask == Mask::keys) {
    Extents shape =
        c.mask == Mask::rows ? Extents{1, 1, c.q_len, c.kv_len} : Extents{c.batch, 1, 1, c.kv_len};
    scores = scores + g.placeholder("mask", to_shape(shape), t);
    b->feeds["mask"] = random_mask(c, shape, false);
  } else if (c.mask == Mask::boolean) {
    Extents shape{c.batch, 1, c.q_len, c.kv_len};
    Tensor keep = g.placeholder("mask", to_shape(shape), DType::boolean);
    scores = where(keep, scores, g.constant(-INFINITY, t));
    b->feeds["mask"] = random_mask(c, shape, true);
  }
  b->y = matmul(softmax(scores, -1), v);
  return b;
}

// Scores and probabilities are rounded to the dtype in the unfused graph and not in the fused
// one: half-precision tolerances cover a few roundings of logits of order 1.
testing::Tolerance tolerance(DType dtype) {
  if (dtype == DType::f16) return {4e-3, 4e-3};
  if (dtype == DType::bf16) return {3e-2, 3e-2};
  return {1e-5, 1e-5};
}

struct Compiled {
  std::string fused_dump, plain_dump;
};

// Compiles `y` with and without the pass, runs both on `feeds` and compares every output.
Compiled compare(const Graph& g, std::vector<Tensor> outputs, const Feeds& feeds, DType dtype,
                 const std::string& what) {
  CompileOptions options;
  options.outputs = outputs;
  Executable fused = compile(g, options);
  options.disabled_passes = {"fuse_attention"};
  Executable plain = compile(g, options);
  auto got = fused.run(feeds), want = plain.run(feeds);
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].shape(), want[i].shape()) << what;
    testing::expect_close(got[i], testing::to_doubles(want[i]), tolerance(dtype), what);
  }
  return {fused.dump(), plain.dump()};
}

void expect_fused(const Variant& c) {
  auto b = build(c);
  Compiled r = compare(b->g, {b->y}, b->feeds, c.dtype, c.str());
  EXPECT_EQ(count_ops(r.fused_dump, "scaled_dot_product_attention"), 1) << c.str() << r.fused_dump;
  EXPECT_EQ(count_ops(r.fused_dump, "softmax"), 0) << c.str() << r.fused_dump;
  EXPECT_EQ(count_ops(r.plain_dump, "scaled_dot_product_attention"), 0) << c.str();
  if (c.kv_heads != c.q_heads) {  // the fused op reads k and v unrepeated
    EXPECT_EQ(count_ops(r.fused_dump, "broadcast_to"), 0) << c.str() << r.fused_dump;
  }
}

TEST(FuseAttention, ScaleBeforeOrAfterMulOrDiv) {
  for (ScaleAt at : {ScaleAt::none, ScaleAt::q, ScaleAt::k, ScaleAt::scores})
    for (ScaleBy by : {ScaleBy::mul, ScaleBy::mul_left, ScaleBy::div})
      for (bool default_scale : {true, false}) {
        Variant c;
        c.scale_at = at;
        c.scale_by = by;
        c.default_scale = default_scale;
        expect_fused(c);
      }
}

TEST(FuseAttention, MasksAndKeyForms) {
  for (Mask mask : {Mask::none, Mask::rows, Mask::keys, Mask::boolean})
    for (KForm form : {KForm::transpose, KForm::transpose_b, KForm::permute}) {
      Variant c;
      c.mask = mask;
      c.k_form = form;
      expect_fused(c);
    }
}

TEST(FuseAttention, GroupedQueryHeadsOddLengthsAndDtypes) {
  for (DType dtype : {DType::f32, DType::f16, DType::bf16})
    for (int64_t ratio : {1, 4})
      for (auto [q_len, kv_len] : {std::pair<int64_t, int64_t>{1, 9}, {7, 13}, {13, 13}, {17, 5}})
        for (Mask mask : {Mask::none, Mask::rows, Mask::keys}) {
          Variant c;
          c.dtype = dtype;
          c.kv_heads = 2;
          c.q_heads = 2 * ratio;
          c.q_len = q_len;
          c.kv_len = kv_len;
          c.dim = 20;
          c.mask = mask;
          c.scale_at = ScaleAt::q;
          c.scale_by = ScaleBy::div;
          expect_fused(c);
        }
}

// The line of the fused node in a dump.
std::string attention_line(const std::string& dump) {
  const size_t at = dump.find("= scaled_dot_product_attention(");
  if (at == std::string::npos) return "";
  const size_t begin = dump.rfind('\n', at) + 1;
  return dump.substr(begin, dump.find('\n', at) - begin);
}

// A constant mask that is exactly the causal one, aligned to the end of the keys (additive -inf,
// additive HF-style finfo.min, or bool through where; square and chunked-prefill shapes), becomes
// the op's causal option: the fused node reads no mask. One entry off the pattern keeps the mask.
TEST(FuseAttention, ConstantCausalMaskBecomesTheCausalOption) {
  enum Form { minus_inf, lowest, boolean, off_by_one };
  for (Form form : {minus_inf, lowest, boolean, off_by_one})
    for (auto [sq, skv] : {std::pair<int64_t, int64_t>{6, 6}, {3, 8}}) {
      Graph g;
      Tensor q = g.placeholder("q", {2, 4, sq, 16});
      Tensor k = g.placeholder("k", {2, 4, skv, 16});
      Tensor v = g.placeholder("v", {2, 4, skv, 16});
      std::vector<float> add(size_t(sq * skv));
      std::vector<bool> keep(size_t(sq * skv));
      for (int64_t i = 0; i < sq; ++i)
        for (int64_t j = 0; j < skv; ++j) {
          const bool visible = j <= i + skv - sq;
          keep[size_t(i * skv + j)] = visible;
          add[size_t(i * skv + j)] = visible          ? 0.f
                                     : form == lowest ? std::numeric_limits<float>::lowest()
                                                      : -INFINITY;
        }
      if (form == off_by_one) add[size_t(skv - 1)] = 0.f;  // row 0 also sees the last key
      Tensor scores = matmul(q, transpose(k, {0, 1, 3, 2})) * 0.25;
      if (form == boolean)
        scores = where(g.constant(TensorData::from_vector<bool>(keep, {sq, skv})), scores,
                       g.constant(-INFINITY, DType::f32));
      else
        scores = scores + g.constant(TensorData::from_floats(add, DType::f32, {1, 1, sq, skv}));
      Tensor y = matmul(softmax(scores, -1), v);
      Feeds feeds{{"q", testing::random_tensor(DType::f32, {2, 4, sq, 16})},
                  {"k", testing::random_tensor(DType::f32, {2, 4, skv, 16})},
                  {"v", testing::random_tensor(DType::f32, {2, 4, skv, 16})}};
      const std::string what = "form " + std::to_string(int(form)) + " " + std::to_string(sq) +
                               "x" + std::to_string(skv);
      Compiled r = compare(g, {y}, feeds, DType::f32, what);
      const std::string line = attention_line(r.fused_dump);
      ASSERT_FALSE(line.empty()) << what << r.fused_dump;
      const bool causal = form != off_by_one;
      EXPECT_EQ(line.find("causal=true") != std::string::npos, causal) << what << "\n" << line;
      EXPECT_EQ(line.find("has_mask=true") != std::string::npos, !causal) << what << "\n" << line;
    }
}

// Lengths as symbols (one compiled graph, several bindings), with a mask over both.
TEST(FuseAttention, SymbolicLengths) {
  Graph g;
  Tensor q = g.placeholder("q", {1, 4, Dim("sq"), 16});
  Tensor k = g.placeholder("k", {1, 2, Dim("skv"), 16});
  Tensor v = g.placeholder("v", {1, 2, Dim("skv"), 16});
  Tensor m = g.placeholder("m", {1, 1, Dim("sq"), Dim("skv")});
  auto repeat = [](const Tensor& x) {
    return reshape(broadcast_to(reshape(x, {1, 2, 1, Dim("skv"), 16}), {1, 2, 2, Dim("skv"), 16}),
                   {1, 4, Dim("skv"), 16});
  };
  Tensor s = matmul(q, transpose(repeat(k), {0, 1, 3, 2})) / 4.0 + m;
  Tensor y = matmul(softmax(s, -1), repeat(v));
  CompileOptions options;
  options.outputs = {y};
  Executable fused = compile(g, options);
  options.disabled_passes = {"fuse_attention"};
  Executable plain = compile(g, options);
  EXPECT_EQ(count_ops(fused.dump(), "scaled_dot_product_attention"), 1) << fused.dump();
  EXPECT_EQ(count_ops(fused.dump(), "softmax"), 0) << fused.dump();
  EXPECT_EQ(count_ops(fused.dump(), "broadcast_to"), 0) << fused.dump();
  for (auto [sq, skv] : {std::pair<int64_t, int64_t>{1, 1}, {3, 11}, {9, 9}}) {
    Variant c;
    Feeds feeds{{"q", testing::random_tensor(DType::f32, {1, 4, sq, 16})},
                {"k", testing::random_tensor(DType::f32, {1, 2, skv, 16})},
                {"v", testing::random_tensor(DType::f32, {1, 2, skv, 16})},
                {"m", random_mask(c, {1, 1, sq, skv}, false)}};
    auto got = fused.run(feeds), want = plain.run(feeds);
    testing::expect_close(got[0], testing::to_doubles(want[0]), tolerance(DType::f32),
                          std::to_string(sq) + "x" + std::to_string(skv));
  }
}

// [B·H, S, D] attention (bmm style): fused as [1, B·H, S, D] through reshapes, with a mask
// [Sq, Skv], k given as [B·H, D, Skv] already (no transpose node), and MQA by broadcasting a
// k and v of batch 1.
TEST(FuseAttention, RankThree) {
  for (DType dtype : {DType::f32, DType::f16}) {
    for (bool shared_kv : {false, true}) {
      Graph g;
      const int64_t n = 6, sq = 5, skv = 9, d = 12, nkv = shared_kv ? 1 : n;
      Tensor q = g.placeholder("q", {n, sq, d}, dtype);
      Tensor kt = g.placeholder("kt", {nkv, d, skv}, dtype);
      Tensor v = g.placeholder("v", {nkv, skv, d}, dtype);
      Tensor m = g.placeholder("m", {sq, skv}, dtype);
      Tensor y = matmul(softmax(matmul(q * 0.25, kt) + m, -1), v);
      Variant c;
      c.dtype = dtype;
      Feeds feeds{{"q", testing::random_tensor(dtype, {n, sq, d})},
                  {"kt", testing::random_tensor(dtype, {nkv, d, skv})},
                  {"v", testing::random_tensor(dtype, {nkv, skv, d})},
                  {"m", random_mask(c, {sq, skv}, false)}};
      Compiled r = compare(g, {y}, feeds, dtype, "rank 3");
      EXPECT_EQ(count_ops(r.fused_dump, "scaled_dot_product_attention"), 1) << r.fused_dump;
      EXPECT_EQ(count_ops(r.fused_dump, "softmax"), 0) << r.fused_dump;
    }
  }
}

TEST(FuseAttention, TurnedOffByNameAndInThePassDumps) {
  const auto names = pass_names();
  EXPECT_NE(std::find(names.begin(), names.end(), "fuse_attention"), names.end());
  auto b = build(Variant{});
  CompileOptions options;
  options.outputs = {b->y};
  options.keep_pass_dumps = true;
  Executable exe = compile(b->g, options);
  bool seen = false;
  for (const auto& d : exe.pass_dumps())
    if (d.pass == "fuse_attention")
      seen = count_ops(d.graph, "scaled_dot_product_attention") == 1 &&
             count_ops(d.graph, "softmax") == 0;
  EXPECT_TRUE(seen);
  EXPECT_EQ(count_ops(exe.pass_dumps().at(0).graph, "softmax"), 1);
}

// Graphs the pass must leave alone: each still gives the unfused graph's values.
void expect_left_alone(const Graph& g, std::vector<Tensor> outputs, const Feeds& feeds,
                       const std::string& what) {
  Compiled r = compare(g, std::move(outputs), feeds, DType::f32, what);
  EXPECT_EQ(count_ops(r.fused_dump, "scaled_dot_product_attention"), 0) << what << r.fused_dump;
  EXPECT_EQ(count_ops(r.fused_dump, "softmax"), 1) << what << r.fused_dump;
}

struct Plain {
  Graph g;
  Tensor q, k, v;
  Feeds feeds;
  explicit Plain(int64_t dim_v = 8) {
    q = g.placeholder("q", {2, 4, 5, 8});
    k = g.placeholder("k", {2, 4, 7, 8});
    v = g.placeholder("v", {2, 4, 7, dim_v});
    feeds = {{"q", testing::random_tensor(DType::f32, {2, 4, 5, 8})},
             {"k", testing::random_tensor(DType::f32, {2, 4, 7, 8})},
             {"v", testing::random_tensor(DType::f32, {2, 4, 7, dim_v})}};
  }
  Tensor scores() { return matmul(q, transpose(k, {0, 1, 3, 2})) * 0.35; }
};

TEST(FuseAttention, ScoresReadElsewhereOrAnOutput) {
  {
    Plain p;
    Tensor s = p.scores();
    Tensor y = matmul(softmax(s, -1), p.v);
    expect_left_alone(p.g, {y, s}, p.feeds, "scores an output");
  }
  {
    Plain p;
    Tensor s = p.scores();
    Tensor y = matmul(softmax(s, -1), p.v) + sum(s, {-1}, true);
    expect_left_alone(p.g, {y}, p.feeds, "scores read twice");
  }
  {
    Plain p;
    Tensor probs = softmax(p.scores(), -1);
    expect_left_alone(p.g, {matmul(probs, p.v), probs}, p.feeds, "probabilities an output");
  }
  {
    Plain p;
    Tensor raw = matmul(p.q, transpose(p.k, {0, 1, 3, 2}));
    Tensor y = matmul(softmax(raw * 0.35, -1), p.v);
    expect_left_alone(p.g, {y, raw}, p.feeds, "unscaled scores an output");
  }
}

TEST(FuseAttention, OtherAxisOrScaleOrShapes) {
  {
    Plain p;
    // Sq == Skv so that softmax over the queries still makes a graph.
    Tensor k = p.g.placeholder("k5", {2, 4, 5, 8});
    Tensor v = p.g.placeholder("v5", {2, 4, 5, 8});
    Feeds feeds = p.feeds;
    feeds["k5"] = testing::random_tensor(DType::f32, {2, 4, 5, 8});
    feeds["v5"] = testing::random_tensor(DType::f32, {2, 4, 5, 8});
    Tensor s = matmul(p.q, transpose(k, {0, 1, 3, 2})) * 0.35;
    expect_left_alone(p.g, {matmul(softmax(s, 2), v)}, feeds, "softmax over the queries");
  }
  {
    Plain p;
    Tensor per_head =
        p.g.constant(TensorData::from_floats({0.1f, 0.2f, 0.3f, 0.4f}, DType::f32, {1, 4, 1, 1}));
    Tensor s = matmul(p.q, transpose(p.k, {0, 1, 3, 2})) * per_head;
    expect_left_alone(p.g, {matmul(softmax(s, -1), p.v)}, p.feeds, "a scale per head");
  }
  {
    Plain p;
    Tensor s = matmul(p.q, transpose(p.k, {0, 1, 3, 2})) * p.g.placeholder("s", {});
    Feeds feeds = p.feeds;
    feeds["s"] = TensorData::scalar(0.3);
    expect_left_alone(p.g, {matmul(softmax(s, -1), p.v)}, feeds, "a scale fed at run time");
  }
  {
    Plain p(6);  // v's head dim is not q's: the fused op needs one D
    expect_left_alone(p.g, {matmul(softmax(p.scores(), -1), p.v)}, p.feeds, "v of another D");
  }
  {
    Plain p;  // scale after the mask: (s + m) c is not s c + m
    Tensor m = p.g.placeholder("m", {1, 1, 5, 7});
    Feeds feeds = p.feeds;
    feeds["m"] = testing::random_tensor(DType::f32, {1, 1, 5, 7});
    Tensor s = (matmul(p.q, transpose(p.k, {0, 1, 3, 2})) + m) * 0.35;
    expect_left_alone(p.g, {matmul(softmax(s, -1), p.v)}, feeds, "scale after the mask");
  }
}

// A device without a kernel for the fused node keeps the graph as it is: here the CPU's
// attention kernel is replaced by one that, like the CUDA kernels with D > 512, refuses
// large head dims.
TEST(FuseAttention, OnlyWhereTheDeviceHasAKernel) {
  std::vector<std::shared_ptr<const Kernel>> limited;
  for (const auto& k : backend_for(Device::cpu()).kernels("scaled_dot_product_attention")) {
    auto copy = std::make_shared<Kernel>(*k);
    copy->supports = [](const ir::Node&, std::span<const TensorView> in) {
      return in[0].shape[3] <= 16;
    };
    limited.push_back(std::move(copy));
  }
  testing::KernelOverride hook(Device::cpu(), "scaled_dot_product_attention", std::move(limited));
  for (int64_t dim : {16, 20}) {
    Variant c;
    c.dim = dim;
    auto b = build(c);
    Compiled r = compare(b->g, {b->y}, b->feeds, c.dtype, "D " + std::to_string(dim));
    EXPECT_EQ(count_ops(r.fused_dump, "scaled_dot_product_attention"), dim <= 16 ? 1 : 0)
        << r.fused_dump;
  }
}

// Heads repeated as tile (broadcast to [B, G, Hkv, S, D]) put kv head h % Hkv at query head h,
// not h / G: the pass must not read that as the op's GQA. It may still fuse with the repeated
// k and v; the values decide.
TEST(FuseAttention, TiledHeadsAreNotGroupedQueryHeads) {
  Graph g;
  Tensor q = g.placeholder("q", {1, 8, 3, 8});
  Tensor k = g.placeholder("k", {1, 2, 6, 8});
  Tensor v = g.placeholder("v", {1, 2, 6, 8});
  auto tile = [](const Tensor& x) {
    return reshape(broadcast_to(reshape(x, {1, 1, 2, 6, 8}), {1, 4, 2, 6, 8}), {1, 8, 6, 8});
  };
  Tensor y = matmul(softmax(matmul(q, transpose(tile(k), {0, 1, 3, 2})) * 0.5, -1), tile(v));
  Feeds feeds{{"q", testing::random_tensor(DType::f32, {1, 8, 3, 8})},
              {"k", testing::random_tensor(DType::f32, {1, 2, 6, 8})},
              {"v", testing::random_tensor(DType::f32, {1, 2, 6, 8})}};
  compare(g, {y}, feeds, DType::f32, "tiled heads");
}

}  // namespace
}  // namespace loom
