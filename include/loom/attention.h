// Fused scaled dot-product attention: softmax(q k^T * scale + mask) v without materialising
// the Sq x Skv scores. See docs/attention.md for the semantics of every option.
#pragma once

#include <cstdint>
#include <optional>

#include "loom/graph.h"

namespace loom {

struct AttentionOptions {
  // Multiplies q k^T; unset means 1 / sqrt(D).
  std::optional<double> scale;
  // Query i (of Sq) sees key j only when j <= i + (L - Sq), L the number of valid keys
  // (kv_len when given, else Skv): the queries are the LAST Sq positions, so a chunk of
  // prefill against a cache is right.
  bool causal = false;
  // Additive float mask (q's dtype) or boolean mask (true = may attend), broadcastable to
  // [B, Hq, Sq, Skv].
  std::optional<Tensor> mask;
  // Run-time number of valid keys per batch row: i32/i64 tensor [B] or [1]; keys at j >=
  // kv_len are ignored (values clamped to [0, Skv]).
  std::optional<Tensor> kv_len;
  // Sliding window: when > 0, the query at position p sees only keys j > p - window.
  int64_t window = 0;
  // int8 KV cache: k and v are i8 codes and these their f32 [B, Hkv, Skv] scales, one per
  // (batch, kv head, key): the key is k_scale * k (and likewise v). Both or neither; given
  // exactly when k and v are i8. quantize_kv makes codes and scales in this layout.
  std::optional<Tensor> k_scale;
  std::optional<Tensor> v_scale;
};

// q [B, Hq, Sq, D], k and v [B, Hkv, Skv, D] (q's float dtype, or i8 with k_scale and
// v_scale), Hq a multiple of Hkv: query head h uses kv head h / (Hq / Hkv). Returns
// [B, Hq, Sq, D] in q's dtype. A query that sees no key gives zeros.
// "scaled_dot_product_attention": inputs q, k, v[, mask][, kv_len][, k_scale, v_scale]; attrs
// scale (when set), causal, window, has_mask, has_kv_len, has_k_scale, has_v_scale.
Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                    const AttentionOptions& options = {});

// Codes and scales of an int8 KV cache entry (see quantize_kv).
struct QuantizedKv {
  Tensor codes;  // i8 [B, H, S, D]
  Tensor scale;  // f32 [B, H, S]
};

// Symmetric int8 per row of D: scale = max|x| / 127 over the row (0 for an all-zero row),
// code = round-half-away(x / scale) clamped to [-127, 127], so |x - scale * code| <= scale / 2
// (up to the f32 rounding of x / scale).
// x is f32, f16 or bf16 [B, H, S, D]. "quantize_kv": input x; outputs codes, scale.
QuantizedKv quantize_kv(const Tensor& x);

}  // namespace loom
