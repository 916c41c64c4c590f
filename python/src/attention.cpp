// loom.scaled_dot_product_attention (include/loom/attention.h).
#include "loom/attention.h"

#include <nanobind/stl/optional.h>

#include "bindings.h"

namespace loom::python {

void bind_attention(nb::module_& m) {
  m.def(
      "scaled_dot_product_attention",
      [](const Tensor& q, const Tensor& k, const Tensor& v, std::optional<double> scale,
         bool causal, std::optional<Tensor> mask, std::optional<Tensor> kv_len, int64_t window,
         std::optional<Tensor> k_scale, std::optional<Tensor> v_scale) {
        AttentionOptions options;
        options.scale = scale;
        options.causal = causal;
        options.mask = std::move(mask);
        options.kv_len = std::move(kv_len);
        options.window = window;
        options.k_scale = std::move(k_scale);
        options.v_scale = std::move(v_scale);
        return scaled_dot_product_attention(q, k, v, options);
      },
      nb::arg("q"), nb::arg("k"), nb::arg("v"), nb::kw_only(), nb::arg("scale") = nb::none(),
      nb::arg("causal") = false, nb::arg("mask") = nb::none(), nb::arg("kv_len") = nb::none(),
      nb::arg("window") = 0, nb::arg("k_scale") = nb::none(), nb::arg("v_scale") = nb::none(),
      "Fused softmax(q k^T * scale + mask) v. q [B, Hq, Sq, D], k and v [B, Hkv, Skv, D], Hq a\n"
      "multiple of Hkv (GQA/MQA). scale defaults to 1/sqrt(D). causal: query i sees keys\n"
      "j <= i + (L - Sq), L = kv_len or Skv (queries are the last Sq positions). mask: bool\n"
      "(True = attend) or additive float of q's dtype, broadcastable to [B, Hq, Sq, Skv].\n"
      "kv_len: int32/int64 tensor [B] or [1], keys past it ignored. window > 0: the query at\n"
      "position p sees only keys j > p - window. A query that sees no key gives zeros.\n"
      "int8 KV cache: k and v int8 codes with k_scale and v_scale, float32 [B, Hkv, Skv] (one\n"
      "scale per key: the key is k_scale * k); see quantize_kv.");
  m.def(
      "quantize_kv",
      [](const Tensor& x) {
        QuantizedKv q = quantize_kv(x);
        return nb::make_tuple(q.codes, q.scale);
      },
      nb::arg("x"),
      "Symmetric int8 per row of D for an int8 KV cache: x [B, H, S, D] (float) -> (codes\n"
      "int8 [B, H, S, D], scale float32 [B, H, S]), scale = max|x| / 127 per row, code =\n"
      "round(x / scale) half away from zero, so |x - scale * code| <= scale / 2.");
}

}  // namespace loom::python
