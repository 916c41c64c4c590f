#include "models/llama_graph.h"

#include <map>

#include "loom/attention.h"
#include "loom/call.h"
#include "loom/quant.h"

namespace loom::models {

std::string lora_symbol(const std::string& name) { return "lora." + name; }
std::string k_cache_name(int64_t layer) { return "cache.k." + std::to_string(layer); }
std::string v_cache_name(int64_t layer) { return "cache.v." + std::to_string(layer); }

namespace {

struct Builder {
  const LlamaConfig& c;
  const LlamaGraphOptions& o;
  const WeightSource& weights;
  Graph g;

  struct Loaded {
    Tensor tensor;
    std::string format;
  };
  std::map<std::string, Loaded> loaded;  // one variable per weight, however often it is used

  const Loaded& weight(const std::string& name) {
    auto it = loaded.find(name);
    if (it != loaded.end()) return it->second;
    LlamaWeight w = weights(name);
    Tensor v = w.data.device().kind == DeviceKind::cpu
                   ? g.variable(name, w.data)
                   : g.variable(name, w.data.shape(), w.data.dtype());
    return loaded.emplace(name, Loaded{v, w.format}).first->second;
  }

  Tensor to_dtype(const Tensor& x) { return x.dtype() == o.dtype ? x : cast(x, o.dtype); }

  // x [..., in] times the weight `name` stored [out, in]: x W^T.
  Tensor project(const Tensor& x, const std::string& name) {
    const Loaded& w = weight(name);
    if (w.format.empty()) return matmul(x, w.tensor, false, true);
    return to_dtype(quant::quantized_matmul(x, w.tensor, w.format, o.int8_activations));
  }

  Tensor linear(const Tensor& x, const std::string& name, bool bias = false) {
    Tensor y = project(x, name + ".weight");
    if (bias) y = y + weight(name + ".bias").tensor;
    if (!o.lora_targets.count(name)) return y;
    // The adapter's low-rank term, computed by whatever executable is bound to the symbol.
    const int64_t out = weight(name + ".weight").tensor.shape()[0].value();
    return y + call(lora_symbol(name), {x}, o.dtype, {o.batch, o.seq, out});
  }

  // The embedding rows of `tokens`: [B, S, D]. Quantized tables are gathered as blocks and
  // only those rows expanded.
  Tensor embed(const Tensor& tokens) {
    const Loaded& table = weight("token_embd.weight");
    if (table.format.empty()) return gather(table.tensor, tokens);
    Tensor rows = gather(table.tensor, tokens);  // u8 [B, S, row_bytes]
    Tensor flat = reshape(rows, {-1, table.tensor.shape()[1].value()});
    Tensor values = quant::dequantize(flat, table.format, c.dim);  // f32 [B * S, D]
    return to_dtype(reshape(values, {o.batch, o.seq, c.dim}));
  }

  // [B, S, H * hd] -> [B, H, S, hd]
  Tensor heads_first(const Tensor& x, int64_t heads) {
    return transpose(reshape(x, {o.batch, o.seq, heads, c.head_dim}), {0, 2, 1, 3});
  }

  Tensor attention(const Tensor& h, int64_t layer, const Tensor& rope_offset,
                   const Tensor& cache_starts, const Tensor& kv_len) {
    const std::string p = "blk." + std::to_string(layer) + ".";
    RopeOptions rope_options{.base = c.rope_base,
                             .interleaved = c.rope_interleaved,
                             .dims = c.rope_dims == c.head_dim ? 0 : c.rope_dims};
    Tensor q =
        rope(heads_first(linear(h, p + "attn_q", c.qkv_bias), c.heads), rope_offset, rope_options);
    Tensor k = rope(heads_first(linear(h, p + "attn_k", c.qkv_bias), c.kv_heads), rope_offset,
                    rope_options);
    Tensor v = heads_first(linear(h, p + "attn_v", c.qkv_bias), c.kv_heads);

    // The step's keys and values go into the caches in place; attention reads the first
    // kv_len rows of the updated caches, so one compiled step serves every position.
    Extents cache_extents{o.batch, c.kv_heads, o.cache_capacity, c.head_dim};
    Tensor k_cache = g.variable(k_cache_name(layer), TensorData::zeros(o.dtype, cache_extents));
    Tensor v_cache = g.variable(v_cache_name(layer), TensorData::zeros(o.dtype, cache_extents));
    Tensor keys = slice_update(g.read(k_cache), k, cache_starts);
    Tensor values = slice_update(g.read(v_cache), v, cache_starts);
    g.assign(k_cache, keys);
    g.assign(v_cache, values);

    AttentionOptions attention_options;
    attention_options.causal = true;  // aligned to the end: query s sits at kv_len - S + s
    attention_options.kv_len = kv_len;
    Tensor out;
    if (o.attention_dtype && *o.attention_dtype != o.dtype) {
      const DType dt = *o.attention_dtype;
      out = cast(scaled_dot_product_attention(cast(q, dt), cast(keys, dt), cast(values, dt),
                                              attention_options),
                 o.dtype);
    } else {
      out = scaled_dot_product_attention(q, keys, values, attention_options);
    }
    out = transpose(out, {0, 2, 1, 3});  // [B, S, Hq, hd]
    return linear(reshape(out, {o.batch, o.seq, c.heads * c.head_dim}), p + "attn_output");
  }

  Tensor mlp(const Tensor& h, int64_t layer) {
    const std::string p = "blk." + std::to_string(layer) + ".";
    return linear(silu(linear(h, p + "ffn_gate")) * linear(h, p + "ffn_up"), p + "ffn_down");
  }

  Tensor norm(const Tensor& x, const std::string& name) {
    return rms_norm(x, weight(name).tensor, c.rms_eps);
  }

  LlamaGraph build() {
    Tensor tokens = g.placeholder("tokens", {o.batch, o.seq}, DType::i32);
    Tensor positions = g.placeholder("positions", {o.seq}, DType::i64);
    Tensor cache_starts = g.placeholder("cache_starts", {4}, DType::i64);
    Tensor last = g.placeholder("last", {1}, DType::i64);

    Tensor rope_offset = slice(cache_starts, {0}, {2}, {3});  // the first position, [1]
    // Keys in the cache after this step: the last position + 1, shared by every layer.
    Tensor kv_len = slice(positions, last, {0}, {1}) + 1.0;

    Tensor x = embed(tokens);  // [B, S, D]
    for (int64_t layer = 0; layer < c.layers; ++layer) {
      const std::string p = "blk." + std::to_string(layer) + ".";
      x = x + attention(norm(x, p + "attn_norm.weight"), layer, rope_offset, cache_starts, kv_len);
      x = x + mlp(norm(x, p + "ffn_norm.weight"), layer);
    }
    Tensor final_rows = slice(x, last, {1}, {1});  // [B, 1, D]
    Tensor h = norm(final_rows, "output_norm.weight");
    Tensor logits = project(h, c.tied_output ? "token_embd.weight" : "output.weight");
    if (logits.dtype() != DType::f32) logits = cast(logits, DType::f32);
    return {g, logits, argmax(logits, -1)};
  }
};

}  // namespace

LlamaGraph build_llama_graph(const LlamaConfig& config, const LlamaGraphOptions& options,
                             const WeightSource& weights) {
  if (options.batch <= 0 || options.cache_capacity <= 0)
    fail(ErrorKind::value, "llama graph: batch and cache capacity must be positive");
  Builder b{config, options, weights, Graph(), {}};
  return b.build();
}

}  // namespace loom::models
