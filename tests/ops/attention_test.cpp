// scaled_dot_product_attention on the CPU against a naive double-precision reference written
// here (scores = q k^T * scale + mask, visibility, softmax, times v) over random shapes, every
// option, and a KV-cache decode loop that writes the cache in place.
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "ops/attention_reference.h"

namespace loom {
namespace {

using testing::expect_error;
using testing::random_tensor;
using testing::rng;
using testing::to_doubles;

using Case = testing::AttentionCase;
using testing::expect_attention_close;

std::vector<double> reference(const Case& c, const TensorData& q, const TensorData& k,
                              const TensorData& v, const std::optional<TensorData>& mask) {
  return testing::attention_reference(c, to_doubles(q), to_doubles(k), to_doubles(v),
                                      mask ? to_doubles(*mask) : std::vector<double>{});
}

struct Inputs {
  TensorData q, k, v;
  std::optional<TensorData> mask, kv_len;
};

Inputs make_inputs(const Case& c) {
  Inputs in{random_tensor(c.dtype, {c.batch, c.q_heads, c.q_len, c.dim}),
            random_tensor(c.dtype, {c.batch, c.kv_heads, c.kv_cap, c.dim}),
            random_tensor(c.dtype, {c.batch, c.kv_heads, c.kv_cap, c.dim}), std::nullopt,
            std::nullopt};
  if (c.mask == Case::Mask::boolean) {
    // About one key in five hidden.
    auto m = random_tensor(DType::f32, c.mask_shape, 0.f, 1.f).to_floats();
    std::vector<uint8_t> bits(m.size());
    for (size_t i = 0; i < m.size(); ++i) bits[i] = m[i] > 0.2f;
    in.mask =
        TensorData::from_vector<bool>(std::vector<bool>(bits.begin(), bits.end()), c.mask_shape);
  } else if (c.mask == Case::Mask::additive) {
    auto m = random_tensor(DType::f32, c.mask_shape, -3.f, 3.f).to_floats();
    for (size_t i = 0; i < m.size(); i += 7) m[i] = -INFINITY;  // some keys hidden outright
    in.mask = TensorData::from_floats(m, c.dtype, c.mask_shape);
  }
  if (!c.kv_len.empty()) {
    std::vector<float> n(c.kv_len.begin(), c.kv_len.end());
    in.kv_len = TensorData::from_floats(n, c.kv_len_dtype, {int64_t(n.size())});
  }
  return in;
}

void check_case(const Case& c) {
  Inputs in = make_inputs(c);
  Graph g;
  Tensor q = g.placeholder("q", {c.batch, c.q_heads, c.q_len, c.dim}, c.dtype);
  Tensor k = g.placeholder("k", {c.batch, c.kv_heads, c.kv_cap, c.dim}, c.dtype);
  Tensor v = g.placeholder("v", {c.batch, c.kv_heads, c.kv_cap, c.dim}, c.dtype);
  AttentionOptions options;
  options.causal = c.causal;
  options.window = c.window;
  options.scale = c.scale;
  Feeds feeds{{"q", in.q}, {"k", in.k}, {"v", in.v}};
  if (in.mask) {
    options.mask = g.placeholder("mask", to_shape(c.mask_shape), in.mask->dtype());
    feeds["mask"] = *in.mask;
  }
  if (in.kv_len) {
    options.kv_len = g.placeholder("kv_len", to_shape(in.kv_len->shape()), c.kv_len_dtype);
    feeds["kv_len"] = *in.kv_len;
  }
  Tensor y = scaled_dot_product_attention(q, k, v, options);
  EXPECT_EQ(y.shape(), (Shape{c.batch, c.q_heads, c.q_len, c.dim})) << c.str();
  EXPECT_EQ(y.dtype(), c.dtype);
  auto got = testing::run_once(g, {y}, feeds).at(0);
  expect_attention_close(got, reference(c, in.q, in.k, in.v, in.mask), c.dtype, c.str());
}

int64_t pick(std::initializer_list<int64_t> values) {
  std::vector<int64_t> v(values);
  return v[std::uniform_int_distribution<size_t>(0, v.size() - 1)(rng())];
}

int64_t uniform(int64_t lo, int64_t hi) {
  return std::uniform_int_distribution<int64_t>(lo, hi)(rng());
}

// A random case: shapes, dtype, GQA ratio and options drawn independently.
Case random_case(bool with_mask, bool with_kv_len, bool with_window) {
  Case c;
  c.dtype = DType(pick({int64_t(DType::f32), int64_t(DType::f16), int64_t(DType::bf16)}));
  c.batch = uniform(1, 2);
  c.kv_heads = pick({1, 2});
  c.q_heads = c.kv_heads * pick({1, 4, 8});
  c.dim = pick({64, 80, 96, 128, 256, 1, 3, 8, 20});
  c.q_len = pick({1, 2, 7, 13, 33, 70});
  c.kv_cap = c.q_len + uniform(0, 90);
  c.causal = uniform(0, 1) == 1;
  if (uniform(0, 3) == 0) c.scale = 0.05 * double(uniform(1, 20));
  if (with_window) c.window = uniform(1, c.kv_cap);
  if (with_mask) {
    c.mask = uniform(0, 1) ? Case::Mask::boolean : Case::Mask::additive;
    switch (uniform(0, 3)) {
      case 0:
        c.mask_shape = {c.q_len, c.kv_cap};
        break;
      case 1:
        c.mask_shape = {c.batch, 1, c.q_len, c.kv_cap};
        break;
      case 2:
        c.mask_shape = {1, c.q_heads, 1, c.kv_cap};
        break;
      default:
        c.mask_shape = {c.batch, c.q_heads, c.q_len, c.kv_cap};
    }
  }
  if (with_kv_len) {
    c.kv_len_dtype = uniform(0, 1) ? DType::i32 : DType::i64;
    int64_t count = uniform(0, 1) ? c.batch : 1;
    for (int64_t b = 0; b < count; ++b) c.kv_len.push_back(uniform(0, c.kv_cap));
  }
  return c;
}

TEST(Attention, RandomShapesMatchTheReference) {
  for (int i = 0; i < 40; ++i) check_case(random_case(false, false, false));
}

TEST(Attention, EveryHeadDimAndGroupRatio) {
  for (int64_t dim : {1, 3, 16, 64, 80, 96, 128, 256})
    for (int64_t ratio : {1, 4, 8})
      for (DType dtype : {DType::f32, DType::f16, DType::bf16}) {
        Case c;
        c.dtype = dtype;
        c.batch = 2;
        c.kv_heads = 2;
        c.q_heads = 2 * ratio;
        c.dim = dim;
        c.q_len = 9;
        c.kv_cap = 77;  // more than one key tile, odd
        c.causal = dim % 2 == 0;
        check_case(c);
      }
}

TEST(Attention, Masks) {
  for (int i = 0; i < 30; ++i) check_case(random_case(true, false, false));
}

TEST(Attention, RunTimeKvLength) {
  for (int i = 0; i < 30; ++i) check_case(random_case(false, true, false));
  // Edge lengths: none, fewer than the queries, all.
  for (int64_t n : {0, 3, 10, 40}) {
    Case c;
    c.q_heads = 4;
    c.q_len = 10;
    c.kv_cap = 40;
    c.dim = 32;
    c.causal = true;
    c.kv_len = {n};
    check_case(c);
  }
}

TEST(Attention, SlidingWindow) {
  for (int i = 0; i < 30; ++i)
    check_case(random_case(uniform(0, 2) == 0, uniform(0, 1) == 1, true));
}

TEST(Attention, EverythingTogether) {
  for (int i = 0; i < 30; ++i) check_case(random_case(true, true, uniform(0, 1) == 1));
}

TEST(Attention, LongSequencesAndManyHeads) {
  Case c;
  c.batch = 1;
  c.kv_heads = 1;
  c.q_heads = 96;  // MQA wider than one task's rows
  c.q_len = 3;
  c.kv_cap = 300;
  c.dim = 64;
  c.causal = true;
  check_case(c);
  Case prefill;
  prefill.q_heads = 4;
  prefill.kv_heads = 2;
  prefill.q_len = 257;
  prefill.kv_cap = 257;
  prefill.dim = 128;
  prefill.causal = true;
  prefill.dtype = DType::bf16;
  check_case(prefill);
}

TEST(Attention, QueriesThatSeeNoKeyGiveZeros) {
  Case c;
  c.q_len = 4;
  c.kv_cap = 6;
  c.dim = 8;
  c.mask = Case::Mask::boolean;
  c.mask_shape = {1, 6};
  Inputs in = make_inputs(c);
  in.mask = TensorData::from_vector<bool>({false, false, false, false, false, false}, {1, 6});
  Graph g;
  AttentionOptions options;
  options.mask = g.constant(*in.mask);
  Tensor y =
      scaled_dot_product_attention(g.constant(in.q), g.constant(in.k), g.constant(in.v), options);
  auto out = testing::run_once(g, {y}).at(0).to_floats();
  for (float x : out) EXPECT_EQ(x, 0.f);
}

TEST(Attention, SymbolicLengths) {
  Graph g;
  Tensor q = g.placeholder("q", {1, 4, "seq", 16});
  Tensor k = g.placeholder("k", {1, 2, "ctx", 16});
  Tensor v = g.placeholder("v", {1, 2, "ctx", 16});
  AttentionOptions options;
  options.causal = true;
  Tensor y = scaled_dot_product_attention(q, k, v, options);
  EXPECT_EQ(y.shape(), (Shape{1, 4, "seq", 16}));
  CompileOptions co;
  co.outputs = {y};
  Executable exe = compile(g, co);
  for (int64_t seq : {1, 5}) {
    Case c;
    c.q_heads = 4;
    c.kv_heads = 2;
    c.q_len = seq;
    c.kv_cap = 11;
    c.dim = 16;
    c.causal = true;
    Inputs in = make_inputs(c);
    auto got = exe.run({{"q", in.q}, {"k", in.k}, {"v", in.v}}).at(0);
    EXPECT_NE(exe.dump().find("cpu.attention.flash"), std::string::npos) << exe.dump();
    expect_attention_close(got, reference(c, in.q, in.k, in.v, std::nullopt), c.dtype, c.str());
  }
}

TEST(Attention, BadInputsAreClearErrors) {
  Graph g;
  Tensor q = g.placeholder("q", {2, 8, 5, 64}, DType::f16);
  Tensor k = g.placeholder("k", {2, 2, 9, 64}, DType::f16);
  Tensor v = g.placeholder("v", {2, 2, 9, 64}, DType::f16);
  const char* op = "scaled_dot_product_attention";
  auto sdpa = [&](Tensor a, Tensor b, Tensor c, AttentionOptions o = {}) {
    scaled_dot_product_attention(a, b, c, o);
  };
  expect_error(
      [&] {
        sdpa(q, g.placeholder("k32", {2, 2, 9, 64}), v);
      },
      ErrorKind::dtype, {op, "one dtype"});
  expect_error(
      [&] {
        sdpa(g.placeholder("qi", {2, 8, 5, 64}, DType::i32), k, v);
      },
      ErrorKind::dtype, {op, "f32, f16, bf16"});
  expect_error(
      [&] {
        sdpa(g.placeholder("q3", {8, 5, 64}, DType::f16), k, v);
      },
      ErrorKind::shape, {op, "[B, Hq, Sq, D]"});
  expect_error(
      [&] {
        sdpa(g.placeholder("q7", {2, 7, 5, 64}, DType::f16), k, v);
      },
      ErrorKind::shape, {op, "multiple of kv heads"});
  expect_error(
      [&] {
        sdpa(g.placeholder("qd", {2, 8, 5, 32}, DType::f16), k, v);
      },
      ErrorKind::shape, {op, "head dim"});
  expect_error(
      [&] {
        sdpa(g.placeholder("qb", {3, 8, 5, 64}, DType::f16), k, v);
      },
      ErrorKind::shape, {op, "batch"});
  expect_error(
      [&] {
        sdpa(q, k, g.placeholder("v8", {2, 2, 8, 64}, DType::f16));
      },
      ErrorKind::shape, {op, "v dim 2"});
  AttentionOptions bad_mask;
  bad_mask.mask = g.placeholder("m", {5, 8}, DType::boolean);
  expect_error([&] { sdpa(q, k, v, bad_mask); }, ErrorKind::shape, {op, "broadcast"});
  bad_mask.mask = g.placeholder("m32", {5, 9});
  expect_error([&] { sdpa(q, k, v, bad_mask); }, ErrorKind::dtype, {op, "mask must be bool"});
  AttentionOptions bad_len;
  bad_len.kv_len = g.placeholder("n", {2}, DType::f32);
  expect_error([&] { sdpa(q, k, v, bad_len); }, ErrorKind::dtype, {op, "kv_len"});
  bad_len.kv_len = g.placeholder("n3", {3}, DType::i32);
  expect_error([&] { sdpa(q, k, v, bad_len); }, ErrorKind::shape, {op, "[B] or [1]"});
  AttentionOptions bad_window;
  bad_window.window = -1;
  expect_error([&] { sdpa(q, k, v, bad_window); }, ErrorKind::value, {op, "window"});
  AttentionOptions bad_scale;
  bad_scale.scale = NAN;
  expect_error([&] { sdpa(q, k, v, bad_scale); }, ErrorKind::value, {op, "scale"});
}

// A decode loop: each step writes this step's k/v into fixed-capacity caches at a run-time
// position (in place) and attends over the first kv_len = position + 1 keys of the caches.
TEST(Attention, KvCacheDecodeMatchesFullRecompute) {
  constexpr int64_t B = 2, Hkv = 2, Hq = 8, C = 80, D = 64, kSteps = 64;
  Graph g;
  Tensor k_cache = g.variable("k_cache", TensorData::zeros(DType::f32, {B, Hkv, C, D}));
  Tensor v_cache = g.variable("v_cache", TensorData::zeros(DType::f32, {B, Hkv, C, D}));
  Tensor q = g.placeholder("q", {B, Hq, 1, D});
  Tensor k_new = g.placeholder("k_new", {B, Hkv, 1, D});
  Tensor v_new = g.placeholder("v_new", {B, Hkv, 1, D});
  Tensor starts = g.placeholder("starts", {4}, DType::i32);
  Tensor kv_len = g.placeholder("kv_len", {1}, DType::i32);
  Tensor k_all = slice_update(g.read(k_cache), k_new, starts);
  Tensor v_all = slice_update(g.read(v_cache), v_new, starts);
  g.assign(k_cache, k_all);
  g.assign(v_cache, v_all);
  AttentionOptions options;
  options.causal = true;
  options.kv_len = kv_len;
  Tensor y = scaled_dot_product_attention(q, k_all, v_all, options);
  CompileOptions co;
  co.outputs = {y};
  Executable exe = compile(g, co);
  EXPECT_NE(exe.dump().find("slice_update_inplace"), std::string::npos) << exe.dump();
  const void* k_buffer = exe.variables().get("k_cache").data();

  // The history each step's reference attends over.
  std::vector<float> keys, values;  // [B, Hkv, step, D] rebuilt per step
  std::vector<std::vector<float>> k_steps, v_steps;
  for (int32_t step = 0; step < kSteps; ++step) {
    auto qs = random_tensor(DType::f32, {B, Hq, 1, D});
    auto ks = random_tensor(DType::f32, {B, Hkv, 1, D});
    auto vs = random_tensor(DType::f32, {B, Hkv, 1, D});
    k_steps.push_back(ks.to_floats());
    v_steps.push_back(vs.to_floats());
    auto got = exe.run({{"q", qs},
                        {"k_new", ks},
                        {"v_new", vs},
                        {"starts", TensorData::from_vector<int32_t>({0, 0, step, 0}, {4})},
                        {"kv_len", TensorData::from_vector<int32_t>({step + 1}, {1})}})
                   .at(0);
    // Full attention over the steps so far, recomputed from scratch.
    int64_t n = step + 1;
    std::vector<float> kf(size_t(B * Hkv * n * D)), vf(kf.size());
    for (int64_t b = 0; b < B; ++b)
      for (int64_t h = 0; h < Hkv; ++h)
        for (int64_t t = 0; t < n; ++t)
          for (int64_t d = 0; d < D; ++d) {
            size_t to = size_t(((b * Hkv + h) * n + t) * D + d);
            size_t from = size_t((b * Hkv + h) * D + d);
            kf[to] = k_steps[size_t(t)][from];
            vf[to] = v_steps[size_t(t)][from];
          }
    Case c;
    c.batch = B;
    c.q_heads = Hq;
    c.kv_heads = Hkv;
    c.q_len = 1;
    c.kv_cap = n;
    c.dim = D;
    c.causal = true;
    auto want = reference(c, qs, TensorData::from_floats(kf, DType::f32, {B, Hkv, n, D}),
                          TensorData::from_floats(vf, DType::f32, {B, Hkv, n, D}), std::nullopt);
    expect_attention_close(got, want, DType::f32, "decode step " + std::to_string(step));
    EXPECT_EQ(exe.variables().get("k_cache").data(), k_buffer);
  }
}

}  // namespace
}  // namespace loom
