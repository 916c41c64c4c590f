// Builds the graph of one forward step of a Llama-family model over a KV cache held in
// variables: embedding, then per layer RMSNorm, q/k/v projections, RoPE, an in-place cache
// write (slice_update + assign), fused causal attention over the first kv_len cache rows,
// the output projection and a SwiGLU MLP; a final norm and the logits of the last position.
//
// Placeholders (B = batch, S = tokens this step, symbolic "seq" for prefill):
//   tokens        i32 [B, S]   token ids
//   positions     i64 [S]      absolute position of each token (the same for every sequence)
//   cache_starts  i64 [4]      {0, 0, positions[0], 0}: where this step's keys go in the cache
//   last          i64 [1]      S - 1: the row whose logits are returned
// Outputs: logits f32 [B, 1, vocab] and next_token i64 [B, 1] (the greedy choice).
#pragma once

#include <functional>
#include <optional>
#include <set>
#include <string>

#include "loom/loom.h"
#include "models/llama_config.h"

namespace loom::models {

struct LlamaGraphOptions {
  int64_t batch = 1;
  int64_t cache_capacity = 2048;  // positions the KV cache holds
  Dim seq = Dim("seq");           // tokens per step: a symbol for prefill, 1 for decode
  DType dtype = DType::f32;       // activations, KV cache and dense weights
  // quantized_matmul's int8_activations (CPU): integer dot products, or exact float ones.
  bool int8_activations = true;
  // The dtype attention computes in, when not `dtype`: q and the updated caches are cast to
  // it before scaled_dot_product_attention and its output back (the caches keep `dtype`).
  // LlamaModel sets f16 for CUDA prefill of an f32 model with int8_activations, where the
  // tensor-core attention kernel takes f16 and bf16 only.
  std::optional<DType> attention_dtype;
  // Projections ("blk.3.attn_q") whose output gets a LoRA term from a callable:
  // y + call(lora_symbol(name), {x}), x [B, S, in] -> [B, S, out] (models/lora_model.h makes
  // the callees). The adapter is bound, and swapped, without recompiling the graph.
  std::set<std::string> lora_targets;
};

// A weight as the graph receives it: dense (`format` empty: a tensor of the graph's dtype in
// row-major order, [out, in] for a projection) or kept in its GGUF blocks (`format` "Q4_1",
// ...: u8 [rows, row_bytes], used through quantized_matmul and never expanded).
struct LlamaWeight {
  TensorData data;
  std::string format;
};

// The weight named as in the GGUF file ("blk.3.attn_q.weight"). A weight whose data is not on
// the CPU is one the executables' VariableStore already holds (the graph declares it by shape).
using WeightSource = std::function<LlamaWeight(const std::string& name)>;

struct LlamaGraph {
  Graph graph;
  Tensor logits;
  Tensor next_token;
};

LlamaGraph build_llama_graph(const LlamaConfig& config, const LlamaGraphOptions& options,
                             const WeightSource& weights);

// The call symbol of the LoRA term of projection `name` ("blk.3.attn_q" -> "lora.blk.3.attn_q").
std::string lora_symbol(const std::string& name);

// Names of the cache variables of layer `layer`.
std::string k_cache_name(int64_t layer);
std::string v_cache_name(int64_t layer);

}  // namespace loom::models
