#include "models/llama_graph.h"

#include <cmath>
#include <limits>

namespace loom::models {

std::string k_cache_name(int64_t layer) { return "cache.k." + std::to_string(layer); }
std::string v_cache_name(int64_t layer) { return "cache.v." + std::to_string(layer); }

namespace {

struct Builder {
  const LlamaConfig& c;
  const LlamaGraphOptions& o;
  const WeightSource& weights;
  Graph g;

  Tensor weight(const std::string& name) { return g.variable(name, weights(name)); }

  // x [..., in] times a projection stored [out, in]: x W^T, plus a bias [out] when given.
  Tensor linear(const Tensor& x, const std::string& name, bool bias = false) {
    Tensor y = matmul(x, weight(name + ".weight"), false, true);
    return bias ? y + weight(name + ".bias") : y;
  }

  // [B, S, H * hd] -> [B, H, S, hd]
  Tensor heads_first(const Tensor& x, int64_t heads) {
    return transpose(reshape(x, {o.batch, o.seq, heads, c.head_dim}), {0, 2, 1, 3});
  }

  Tensor attention(const Tensor& h, int64_t layer, const Tensor& rope_offset,
                   const Tensor& cache_starts, const Tensor& allowed) {
    const std::string p = "blk." + std::to_string(layer) + ".";
    const int64_t group = c.heads / c.kv_heads;
    RopeOptions rope_options{.base = c.rope_base,
                             .interleaved = c.rope_interleaved,
                             .dims = c.rope_dims == c.head_dim ? 0 : c.rope_dims};
    Tensor q =
        rope(heads_first(linear(h, p + "attn_q", c.qkv_bias), c.heads), rope_offset, rope_options);
    Tensor k = rope(heads_first(linear(h, p + "attn_k", c.qkv_bias), c.kv_heads), rope_offset,
                    rope_options);
    Tensor v = heads_first(linear(h, p + "attn_v", c.qkv_bias), c.kv_heads);

    // The step's keys and values go into the caches in place; attention reads the updated
    // caches (all `cache_capacity` positions, the ones not yet written masked out).
    Shape cache_shape{o.batch, c.kv_heads, o.cache_capacity, c.head_dim};
    Extents cache_extents{o.batch, c.kv_heads, o.cache_capacity, c.head_dim};
    Tensor k_cache = g.variable(k_cache_name(layer), TensorData::zeros(o.dtype, cache_extents));
    Tensor v_cache = g.variable(v_cache_name(layer), TensorData::zeros(o.dtype, cache_extents));
    Tensor keys = slice_update(g.read(k_cache), k, cache_starts);
    Tensor values = slice_update(g.read(v_cache), v, cache_starts);
    g.assign(k_cache, keys);
    g.assign(v_cache, values);

    // Query heads sharing one key/value head become rows of one matmul: [B, Hkv, G * S, hd].
    Tensor qg =
        reshape(q * (1.0 / std::sqrt(double(c.head_dim))), {o.batch, c.kv_heads, -1, c.head_dim});
    Tensor scores = matmul(qg, keys, false, true);  // [B, Hkv, G * S, capacity]
    scores = reshape(scores, {o.batch, c.kv_heads, group, o.seq, o.cache_capacity});
    Tensor masked =
        where(allowed, scores, g.constant(-std::numeric_limits<double>::infinity(), o.dtype));
    Tensor probs = reshape(softmax(masked, -1), {o.batch, c.kv_heads, -1, o.cache_capacity});
    Tensor out = matmul(probs, values);  // [B, Hkv, G * S, hd]
    out = transpose(reshape(out, {o.batch, c.heads, o.seq, c.head_dim}), {0, 2, 1, 3});
    return linear(reshape(out, {o.batch, o.seq, c.heads * c.head_dim}), p + "attn_output");
  }

  Tensor mlp(const Tensor& h, int64_t layer) {
    const std::string p = "blk." + std::to_string(layer) + ".";
    return linear(silu(linear(h, p + "ffn_gate")) * linear(h, p + "ffn_up"), p + "ffn_down");
  }

  LlamaGraph build() {
    Tensor tokens = g.placeholder("tokens", {o.batch, o.seq}, DType::i32);
    Tensor positions = g.placeholder("positions", {o.seq}, DType::i64);
    Tensor cache_starts = g.placeholder("cache_starts", {4}, DType::i64);
    Tensor last = g.placeholder("last", {1}, DType::i64);

    // Query s may see key j when j <= positions[s]: [S, capacity], shared by every layer.
    Tensor key_index =
        reshape(arange(g, 0, double(o.cache_capacity), 1, DType::i64), {1, o.cache_capacity});
    Tensor allowed = less(key_index, reshape(positions, {o.seq, 1}) + 1.0);
    Tensor rope_offset = slice(cache_starts, {0}, {2}, {3});  // the first position, [1]

    Tensor embedding = weight("token_embd.weight");
    Tensor x = gather(embedding, tokens);  // [B, S, D]
    for (int64_t layer = 0; layer < c.layers; ++layer) {
      const std::string p = "blk." + std::to_string(layer) + ".";
      x = x + attention(rms_norm(x, weight(p + "attn_norm.weight"), c.rms_eps), layer, rope_offset,
                        cache_starts, allowed);
      x = x + mlp(rms_norm(x, weight(p + "ffn_norm.weight"), c.rms_eps), layer);
    }
    Tensor final_rows = slice(x, last, {1}, {1});  // [B, 1, D]
    Tensor h = rms_norm(final_rows, weight("output_norm.weight"), c.rms_eps);
    Tensor head = c.tied_output ? embedding : weight("output.weight");
    Tensor logits = matmul(h, head, false, true);
    if (logits.dtype() != DType::f32) logits = cast(logits, DType::f32);
    return {g, logits, argmax(logits, -1)};
  }
};

}  // namespace

LlamaGraph build_llama_graph(const LlamaConfig& config, const LlamaGraphOptions& options,
                             const WeightSource& weights) {
  if (options.batch <= 0 || options.cache_capacity <= 0)
    fail(ErrorKind::value, "llama graph: batch and cache capacity must be positive");
  Builder b{config, options, weights, Graph()};
  return b.build();
}

}  // namespace loom::models
