// The naive double-precision attention reference the CPU attention tests share
// (tests/ops/attention_test.cpp, tests/ops/attention_int8_kv_test.cpp): one case's shape and
// options, scores = q kᵀ * scale + mask, visibility (kv_len, causal aligned to the end,
// window), softmax, times v; the elementwise tolerance per dtype; and the int8-KV-cache decode
// step the CPU and CUDA tests build alike.
#pragma once

#include <algorithm>
#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include "loom/attention.h"
#include "ops/byte_reference.h"

namespace loom::testing {

struct AttentionCase {
  int64_t batch = 1, q_heads = 1, kv_heads = 1, q_len = 1, kv_cap = 1, dim = 8;
  DType dtype = DType::f32;
  bool causal = false;
  int64_t window = 0;
  std::optional<double> scale;
  // Mask: none, bool or float (q's dtype), with this shape (broadcast to [B, Hq, Sq, Skv]).
  enum class Mask { none, boolean, additive } mask = Mask::none;
  Extents mask_shape;
  // kv_len: empty for none; else one value per batch row or a single value.
  std::vector<int64_t> kv_len;
  DType kv_len_dtype = DType::i32;

  std::string str() const {
    std::string s = "B" + std::to_string(batch) + " Hq" + std::to_string(q_heads) + " Hkv" +
                    std::to_string(kv_heads) + " Sq" + std::to_string(q_len) + " Skv" +
                    std::to_string(kv_cap) + " D" + std::to_string(dim) + " " + dtype_name(dtype) +
                    (causal ? " causal" : "") + (window ? " window" + std::to_string(window) : "") +
                    (mask == Mask::boolean ? " bool-mask" : "") +
                    (mask == Mask::additive ? " float-mask" : "") +
                    (mask != Mask::none ? to_string(mask_shape) : "");
    if (!kv_len.empty()) {
      s += " kv_len[";
      for (int64_t n : kv_len) s += std::to_string(n) + ",";
      s += "]";
    }
    return s;
  }
};

// The reference, in double, over q, k and v given as doubles (k and v [B, Hkv, Skv, D]: an
// int8 cache passes its dequantized values) and the mask's values when c has one. A query
// that sees no key gives zeros (the op's definition).
inline std::vector<double> attention_reference(const AttentionCase& c,
                                               const std::vector<double>& qd,
                                               const std::vector<double>& kd,
                                               const std::vector<double>& vd,
                                               const std::vector<double>& md = {}) {
  const bool mask = c.mask != AttentionCase::Mask::none;
  const int64_t D = c.dim, G = c.q_heads / c.kv_heads;
  double scale = c.scale.value_or(1.0 / std::sqrt(double(D)));
  std::vector<double> out(size_t(c.batch * c.q_heads * c.q_len * D), 0.0);
  Extents full{c.batch, c.q_heads, c.q_len, c.kv_cap};
  for (int64_t b = 0; b < c.batch; ++b) {
    int64_t keys = c.kv_cap;
    if (!c.kv_len.empty())
      keys = std::clamp<int64_t>(c.kv_len.size() == 1 ? c.kv_len[0] : c.kv_len[size_t(b)], 0,
                                 c.kv_cap);
    for (int64_t h = 0; h < c.q_heads; ++h) {
      int64_t kvh = h / G;
      for (int64_t s = 0; s < c.q_len; ++s) {
        int64_t pos = s + keys - c.q_len;
        std::vector<double> scores(size_t(c.kv_cap), -INFINITY);
        for (int64_t j = 0; j < keys; ++j) {
          if (c.causal && j > pos) continue;
          if (c.window > 0 && j <= pos - c.window) continue;
          double x = 0;
          for (int64_t d = 0; d < D; ++d)
            x += qd[size_t(((b * c.q_heads + h) * c.q_len + s) * D + d)] *
                 kd[size_t(((b * c.kv_heads + kvh) * c.kv_cap + j) * D + d)];
          x *= scale;
          if (mask) {
            double mv = md[size_t(testing::broadcast_index({b, h, s, j}, c.mask_shape))];
            if (c.mask == AttentionCase::Mask::boolean) {
              if (mv == 0) continue;
            } else {
              x += mv;
            }
          }
          scores[size_t(j)] = x;
        }
        double top = -INFINITY;
        for (double x : scores) top = std::max(top, x);
        if (top == -INFINITY) continue;  // no visible key: zeros
        double total = 0;
        for (double& x : scores) total += (x = std::exp(x - top));
        for (int64_t j = 0; j < c.kv_cap; ++j) {
          double p = scores[size_t(j)] / total;
          if (p == 0) continue;
          for (int64_t d = 0; d < D; ++d)
            out[size_t(((b * c.q_heads + h) * c.q_len + s) * D + d)] +=
                p * vd[size_t(((b * c.kv_heads + kvh) * c.kv_cap + j) * D + d)];
        }
      }
    }
  }
  return out;
}

// Elementwise |got - want| <= atol + rtol |want|: the output rounding of each dtype plus a
// margin for f32 accumulation (values are weighted means of v in [-1, 1]).
inline void expect_attention_close(const TensorData& got, const std::vector<double>& want,
                                   DType dtype, const std::string& what) {
  double atol = 2e-5, rtol = 1e-4;
  if (dtype == DType::f16) atol = rtol = 1e-3;
  if (dtype == DType::bf16) atol = rtol = 8e-3;
  auto g = got.to_floats();
  ASSERT_EQ(g.size(), want.size()) << what;
  int reported = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    double err = std::abs(double(g[i]) - want[i]);
    if (!(err <= atol + rtol * std::abs(want[i])) && reported++ < 5)
      ADD_FAILURE() << what << ": element " << i << " is " << g[i] << ", want " << want[i];
  }
}

// One decode step over an int8 KV cache in variables: k_cache, v_cache (codes [B, Hkv, C, D])
// and k_scale, v_scale ([B, Hkv, C]); this step's k_new, v_new [B, Hkv, 1, D] quantized with
// quantize_kv and written in place at the fed `starts` {0, 0, pos, 0} / `scale_starts`
// {0, 0, pos}; then causal attention of q [B, Hq, 1, D] (q's dtype `dtype`) over `kv_len` keys.
inline Tensor int8_kv_decode_step(Graph& g, int64_t B, int64_t Hq, int64_t Hkv, int64_t C,
                                  int64_t D, DType dtype) {
  Tensor k_cache = g.variable("k_cache", TensorData::zeros(DType::i8, {B, Hkv, C, D}));
  Tensor v_cache = g.variable("v_cache", TensorData::zeros(DType::i8, {B, Hkv, C, D}));
  Tensor k_scales = g.variable("k_scale", TensorData::zeros(DType::f32, {B, Hkv, C}));
  Tensor v_scales = g.variable("v_scale", TensorData::zeros(DType::f32, {B, Hkv, C}));
  Tensor q = g.placeholder("q", {B, Hq, 1, D}, dtype);
  Tensor k_new = g.placeholder("k_new", {B, Hkv, 1, D}, dtype);
  Tensor v_new = g.placeholder("v_new", {B, Hkv, 1, D}, dtype);
  Tensor starts = g.placeholder("starts", {4}, DType::i32);
  Tensor scale_starts = g.placeholder("scale_starts", {3}, DType::i32);
  Tensor kv_len = g.placeholder("kv_len", {1}, DType::i32);
  QuantizedKv kq = quantize_kv(k_new), vq = quantize_kv(v_new);
  Tensor k_all = slice_update(g.read(k_cache), kq.codes, starts);
  Tensor v_all = slice_update(g.read(v_cache), vq.codes, starts);
  Tensor ks_all = slice_update(g.read(k_scales), kq.scale, scale_starts);
  Tensor vs_all = slice_update(g.read(v_scales), vq.scale, scale_starts);
  g.assign(k_cache, k_all);
  g.assign(v_cache, v_all);
  g.assign(k_scales, ks_all);
  g.assign(v_scales, vs_all);
  AttentionOptions options;
  options.causal = true;
  options.kv_len = kv_len;
  options.k_scale = ks_all;
  options.v_scale = vs_all;
  return scaled_dot_product_attention(q, k_all, v_all, options);
}

// The feeds of that step at position `step` (kv_len = step + 1).
inline Feeds int8_kv_decode_feeds(TensorData q, TensorData k_new, TensorData v_new, int32_t step) {
  return Feeds{{"q", std::move(q)},
               {"k_new", std::move(k_new)},
               {"v_new", std::move(v_new)},
               {"starts", TensorData::from_vector<int32_t>({0, 0, step, 0}, {4})},
               {"scale_starts", TensorData::from_vector<int32_t>({0, 0, step}, {3})},
               {"kv_len", TensorData::from_vector<int32_t>({step + 1}, {1})}};
}

}  // namespace loom::testing
