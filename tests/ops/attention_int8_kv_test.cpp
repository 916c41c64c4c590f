// scaled_dot_product_attention over an int8 KV cache (i8 K/V + an f32 scale per key) on the
// CPU, against a naive double-precision reference over the dequantized values scale * code
// (so only the kernel's f32 accumulation differs: the f32 tests' tolerances); quantize_kv's
// codes and scales against their definition; a 64-step decode whose int8 caches live in
// variables updated in place; and the validation errors.
#include <algorithm>
#include <cmath>
#include <cstdio>
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

// The values an int8 tensor [B, H, S, D] with scales [B, H, S] stands for, in double.
std::vector<double> dequantized(const TensorData& codes, const TensorData& scales) {
  auto c = codes.to_vector<int8_t>();
  auto s = scales.to_vector<float>();
  const size_t D = s.empty() ? 0 : c.size() / s.size();
  std::vector<double> out(c.size());
  for (size_t i = 0; i < c.size(); ++i) out[i] = double(s[i / D]) * double(c[i]);
  return out;
}

std::vector<double> reference(const Case& c, const std::vector<double>& qd,
                              const std::vector<double>& kd, const std::vector<double>& vd) {
  return testing::attention_reference(c, qd, kd, vd);
}

// Random codes in [-127, 127] and positive scales (some rows all zero, scale 0).
TensorData random_codes(Extents shape) {
  std::uniform_int_distribution<int> code(-127, 127);
  std::vector<int8_t> v(size_t(numel(shape)));
  for (auto& x : v) x = int8_t(code(rng()));
  return TensorData::from_vector<int8_t>(v, std::move(shape));
}

TensorData random_scales(Extents shape) {
  auto s = random_tensor(DType::f32, std::move(shape), 0.002f, 0.01f);
  auto v = s.to_vector<float>();
  for (size_t i = 0; i < v.size(); i += 11) v[i] = 0.f;  // an all-zero row
  return TensorData::from_vector<float>(v, s.shape());
}

void check_case(const Case& c) {
  const Extents kv_shape{c.batch, c.kv_heads, c.kv_cap, c.dim};
  const Extents scale_shape{c.batch, c.kv_heads, c.kv_cap};
  TensorData q = random_tensor(c.dtype, {c.batch, c.q_heads, c.q_len, c.dim});
  TensorData k = random_codes(kv_shape), v = random_codes(kv_shape);
  TensorData ks = random_scales(scale_shape), vs = random_scales(scale_shape);
  Graph g;
  AttentionOptions o;
  o.causal = c.causal;
  o.window = c.window;
  o.k_scale = g.placeholder("k_scale", to_shape(scale_shape));
  o.v_scale = g.placeholder("v_scale", to_shape(scale_shape));
  Feeds feeds{{"q", q}, {"k", k}, {"v", v}, {"k_scale", ks}, {"v_scale", vs}};
  if (!c.kv_len.empty()) {
    std::vector<int32_t> n(c.kv_len.begin(), c.kv_len.end());
    o.kv_len = g.placeholder("kv_len", {int64_t(n.size())}, DType::i32);
    feeds["kv_len"] = TensorData::from_vector<int32_t>(n, {int64_t(n.size())});
  }
  Tensor y = scaled_dot_product_attention(
      g.placeholder("q", {c.batch, c.q_heads, c.q_len, c.dim}, c.dtype),
      g.placeholder("k", to_shape(kv_shape), DType::i8),
      g.placeholder("v", to_shape(kv_shape), DType::i8), o);
  EXPECT_EQ(y.dtype(), c.dtype);
  EXPECT_EQ(y.shape(), (Shape{c.batch, c.q_heads, c.q_len, c.dim}));
  auto got = testing::run_once(g, {y}, feeds).at(0);
  expect_attention_close(got, reference(c, to_doubles(q), dequantized(k, ks), dequantized(v, vs)),
                         c.dtype, c.str());
}

int64_t uniform(int64_t lo, int64_t hi) {
  return std::uniform_int_distribution<int64_t>(lo, hi)(rng());
}

TEST(AttentionInt8Kv, MatchesTheDequantizedReference) {
  for (DType dtype : {DType::f32, DType::f16, DType::bf16})
    for (int64_t ratio : {1, 4})
      for (int64_t dim : {64, 128})
        for (int64_t q_len : {1, 7})
          for (bool causal : {false, true}) {
            Case c;
            c.dtype = dtype;
            c.batch = 2;
            c.kv_heads = 2;
            c.q_heads = 2 * ratio;
            c.dim = dim;
            c.q_len = q_len;
            c.kv_cap = q_len + uniform(0, 150);
            c.causal = causal;
            check_case(c);
          }
}

TEST(AttentionInt8Kv, RunTimeKvLengthAnywhere) {
  for (int i = 0; i < 24; ++i) {
    Case c;
    c.batch = 2;
    c.kv_heads = uniform(1, 2);
    c.q_heads = c.kv_heads * (uniform(0, 1) ? 4 : 1);
    c.dim = uniform(0, 1) ? 64 : 128;
    c.q_len = uniform(0, 1) ? 1 : uniform(2, 9);
    c.kv_cap = c.q_len + uniform(0, 200);
    c.causal = uniform(0, 1) == 1;
    if (i % 4 == 3) c.window = uniform(1, c.kv_cap);
    if (i % 2)
      c.kv_len = {uniform(0, c.kv_cap), uniform(0, c.kv_cap)};
    else
      c.kv_len = {i == 0 ? 0 : uniform(0, c.kv_cap)};
    check_case(c);
  }
}

// quantize_kv against its definition: scale = max|x| / 127 per row of D, codes within
// [-127, 127], and |x - scale * code| <= scale / 2 (the rounding bound).
TEST(AttentionInt8Kv, QuantizeKvCodesAndScales) {
  for (DType dtype : {DType::f32, DType::f16, DType::bf16})
    for (int64_t dim : {1, 64, 128, 100}) {
      const Extents shape{2, 3, 9, dim};
      auto xv = random_tensor(DType::f32, shape, -3.f, 3.f).to_floats();
      for (int64_t d = 0; d < dim; ++d) xv[size_t(5 * dim + d)] = 0.f;  // an all-zero row
      TensorData x = TensorData::from_floats(xv, dtype, shape);
      Graph g;
      QuantizedKv qkv = quantize_kv(g.placeholder("x", to_shape(shape), dtype));
      EXPECT_EQ(qkv.codes.dtype(), DType::i8);
      EXPECT_EQ(qkv.scale.dtype(), DType::f32);
      EXPECT_EQ(qkv.scale.shape(), (Shape{2, 3, 9}));
      auto out = testing::run_once(g, {qkv.codes, qkv.scale}, {{"x", x}});
      auto codes = out[0].to_vector<int8_t>();
      auto scales = out[1].to_vector<float>();
      auto xs = x.to_floats();  // after rounding to dtype
      double worst = 0;
      for (size_t r = 0; r < scales.size(); ++r) {
        float top = 0;
        for (int64_t d = 0; d < dim; ++d) top = std::max(top, std::abs(xs[r * size_t(dim) + d]));
        ASSERT_EQ(scales[r], top / 127.f) << "row " << r;
        for (int64_t d = 0; d < dim; ++d) {
          size_t i = r * size_t(dim) + size_t(d);
          ASSERT_GE(codes[i], -127);
          double err = std::abs(double(xs[i]) - double(scales[r]) * codes[i]);
          worst = std::max(worst, scales[r] > 0 ? err / scales[r] : err);
          ASSERT_LE(err, double(scales[r]) * (0.5 + 1e-5)) << "element " << i;
        }
      }
      EXPECT_LE(worst, 0.5 + 1e-5);
      EXPECT_EQ(scales[5], 0.f);
    }
}

// The accuracy of attention over an int8 cache against the same attention over the float
// cache it was quantized from: reported, and bounded (values in [-1, 1]: the per-element
// error is at most max|x| / 254 ~ 0.004; measured: max 5e-4, relative rms 4e-3).
TEST(AttentionInt8Kv, AccuracyAgainstTheFloatCache) {
  constexpr int64_t B = 1, Hq = 8, Hkv = 2, Sq = 4, S = 300, D = 128;
  TensorData q = random_tensor(DType::f32, {B, Hq, Sq, D});
  TensorData k = random_tensor(DType::f32, {B, Hkv, S, D});
  TensorData v = random_tensor(DType::f32, {B, Hkv, S, D});
  Graph g;
  Tensor qt = g.placeholder("q", {B, Hq, Sq, D});
  Tensor kt = g.placeholder("k", {B, Hkv, S, D});
  Tensor vt = g.placeholder("v", {B, Hkv, S, D});
  QuantizedKv kq = quantize_kv(kt), vq = quantize_kv(vt);
  AttentionOptions o;
  o.causal = true;
  Tensor exact = scaled_dot_product_attention(qt, kt, vt, o);
  o.k_scale = kq.scale;
  o.v_scale = vq.scale;
  Tensor int8 = scaled_dot_product_attention(qt, kq.codes, vq.codes, o);
  auto out = testing::run_once(g, {exact, int8}, {{"q", q}, {"k", k}, {"v", v}});
  auto a = out[0].to_floats(), b = out[1].to_floats();
  double worst = 0, sum2 = 0, ref2 = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    worst = std::max(worst, std::abs(double(a[i]) - b[i]));
    sum2 += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    ref2 += double(a[i]) * a[i];
  }
  RecordProperty("max_abs_error", std::to_string(worst));
  RecordProperty("relative_rms_error", std::to_string(std::sqrt(sum2 / ref2)));
  std::printf(
      "int8 KV cache vs f32 cache (D=%lld, %lld keys): max |error| %.3g, relative rms %.3g\n",
      (long long)D, (long long)S, worst, std::sqrt(sum2 / ref2));
  EXPECT_LT(worst, 2e-3);
  EXPECT_LT(std::sqrt(sum2 / ref2), 1e-2);
}

// A decode loop over an int8 cache: each step quantizes this step's k/v (quantize_kv), writes
// codes and scales into fixed-capacity variables in place at a run-time position, and
// attends over kv_len = position + 1 keys; checked against attention recomputed over the
// whole dequantized cache as it stands after the step (and the codes against the step's k/v).
TEST(AttentionInt8Kv, KvCacheDecodeMatchesFullRecompute) {
  constexpr int64_t B = 2, Hkv = 2, Hq = 8, C = 80, D = 64, kSteps = 64;
  Graph g;
  Tensor y = testing::int8_kv_decode_step(g, B, Hq, Hkv, C, D, DType::f32);
  CompileOptions co;
  co.outputs = {y};
  Executable exe = compile(g, co);
  const std::string dump = exe.dump();
  EXPECT_NE(dump.find("slice_update_inplace"), std::string::npos) << dump;
  const void* k_buffer = exe.variables().get("k_cache").data();
  const void* ks_buffer = exe.variables().get("k_scale").data();

  for (int32_t step = 0; step < kSteps; ++step) {
    auto qs = random_tensor(DType::f32, {B, Hq, 1, D});
    auto ks = random_tensor(DType::f32, {B, Hkv, 1, D});
    auto vs = random_tensor(DType::f32, {B, Hkv, 1, D});
    auto got = exe.run(testing::int8_kv_decode_feeds(qs, ks, vs, step)).at(0);
    const TensorData kc = exe.variables().get("k_cache").to_host();
    const TensorData vc = exe.variables().get("v_cache").to_host();
    const TensorData ksc = exe.variables().get("k_scale").to_host();
    const TensorData vsc = exe.variables().get("v_scale").to_host();
    // This step's row of the cache holds the step's k within the rounding bound.
    auto kd = dequantized(kc, ksc), vd = dequantized(vc, vsc);
    auto kf = ks.to_floats(), vf = vs.to_floats();
    auto ksv = ksc.to_vector<float>();
    for (int64_t bh = 0; bh < B * Hkv; ++bh) {
      float s = ksv[size_t(bh * C + step)];
      float top = 0;
      for (int64_t d = 0; d < D; ++d) top = std::max(top, std::abs(kf[size_t(bh * D + d)]));
      ASSERT_EQ(s, top / 127.f) << "step " << step;
      for (int64_t d = 0; d < D; ++d)
        ASSERT_LE(std::abs(kd[size_t((bh * C + step) * D + d)] - kf[size_t(bh * D + d)]),
                  s * (0.5 + 1e-5))
            << "step " << step;
    }
    Case c;
    c.batch = B;
    c.q_heads = Hq;
    c.kv_heads = Hkv;
    c.q_len = 1;
    c.kv_cap = C;
    c.dim = D;
    c.causal = true;
    c.kv_len = {step + 1};
    expect_attention_close(got, reference(c, to_doubles(qs), kd, vd), DType::f32,
                           "decode step " + std::to_string(step));
    EXPECT_EQ(exe.variables().get("k_cache").data(), k_buffer);
    EXPECT_EQ(exe.variables().get("k_scale").data(), ks_buffer);
  }
}

TEST(AttentionInt8Kv, BadInputsAreClearErrors) {
  Graph g;
  const char* op = "scaled_dot_product_attention";
  Tensor q = g.placeholder("q", {2, 8, 5, 64}, DType::f16);
  Tensor k = g.placeholder("k", {2, 2, 9, 64}, DType::i8);
  Tensor v = g.placeholder("v", {2, 2, 9, 64}, DType::i8);
  Tensor kf = g.placeholder("kf", {2, 2, 9, 64}, DType::f16);
  Tensor scale = g.placeholder("s", {2, 2, 9});
  AttentionOptions none;
  expect_error([&] { scaled_dot_product_attention(q, k, v, none); }, ErrorKind::value,
               {op, "need k_scale and v_scale"});
  AttentionOptions only_k;
  only_k.k_scale = scale;
  expect_error([&] { scaled_dot_product_attention(q, k, v, only_k); }, ErrorKind::value,
               {op, "need k_scale and v_scale"});
  AttentionOptions both;
  both.k_scale = scale;
  both.v_scale = scale;
  expect_error([&] { scaled_dot_product_attention(q, kf, kf, both); }, ErrorKind::value,
               {op, "k_scale and v_scale go with i8"});
  expect_error([&] { scaled_dot_product_attention(q, k, kf, both); }, ErrorKind::dtype,
               {op, "one dtype"});
  expect_error(
      [&] {
        scaled_dot_product_attention(g.placeholder("qi", {2, 8, 5, 64}, DType::i8), k, v, both);
      },
      ErrorKind::dtype, {op, "f32, f16, bf16"});
  AttentionOptions bad = both;
  bad.v_scale = g.placeholder("s16", {2, 2, 9}, DType::f16);
  expect_error([&] { scaled_dot_product_attention(q, k, v, bad); }, ErrorKind::dtype,
               {op, "v_scale"});
  bad.v_scale = g.placeholder("s4", {2, 2, 9, 1});
  expect_error([&] { scaled_dot_product_attention(q, k, v, bad); }, ErrorKind::shape,
               {op, "v_scale must be [B, Hkv, Skv]"});
  bad = both;
  bad.k_scale = g.placeholder("s8", {2, 2, 8});
  expect_error([&] { scaled_dot_product_attention(q, k, v, bad); }, ErrorKind::shape,
               {op, "k_scale dim 2"});
  expect_error(
      [&] {
        quantize_kv(g.placeholder("x3", {2, 9, 64}));
      },
      ErrorKind::shape, {"quantize_kv", "[B, H, S, D]"});
  expect_error(
      [&] {
        quantize_kv(g.placeholder("xi", {2, 2, 9, 64}, DType::i32));
      },
      ErrorKind::dtype, {"quantize_kv", "x"});
}

}  // namespace
}  // namespace loom
