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
};

// q [B, Hq, Sq, D], k and v [B, Hkv, Skv, D] (one float dtype), Hq a multiple of Hkv: query
// head h uses kv head h / (Hq / Hkv). Returns [B, Hq, Sq, D]. A query that sees no key gives
// zeros. "scaled_dot_product_attention": inputs q, k, v[, mask][, kv_len]; attrs scale
// (when set), causal, window, has_mask, has_kv_len.
Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                    const AttentionOptions& options = {});

}  // namespace loom
