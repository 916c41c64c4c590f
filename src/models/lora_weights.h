// LoraAdapter: a PEFT LoRA adapter folder (adapter_config.json + adapter_model.safetensors)
// read for a Llama model: per targeted projection, A [r, in] and B [out, r] in f32, named by
// the projection's GGUF weight ("blk.3.attn_q"), B's rows in the GGUF layout.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "models/llama_config.h"
#include "models/lora_config.h"

namespace loom::models {

struct LoraPair {
  int64_t rank = 0, in = 0, out = 0;
  std::vector<float> a;  // [rank, in], row-major
  std::vector<float> b;  // [out, rank]
};

struct LoraAdapter {
  LoraConfig config;
  std::map<std::string, LoraPair> pairs;  // "blk.N.<gguf module>" -> its A and B

  // Reads DIR/adapter_config.json and DIR/adapter_model.safetensors for `model`: every
  // target module of every layer must be there as
  //   base_model.model.model.layers.N.<self_attn|mlp>.<module>.lora_<A|B>.weight
  // (F32, F16 or BF16) with the model's shapes, and nothing else. Anything else is a
  // loom::Error (io; unsupported for PEFT features Loom does not implement) naming the file
  // and the tensor.
  static LoraAdapter read(const std::string& dir, const LlamaConfig& model);
  static LoraAdapter from_files(const LoraConfig& config, const io::SafetensorsFile& weights,
                                const LlamaConfig& model);
};

// The projection's input and output widths in `model` ("attn_q" -> {dim, heads * head_dim}).
std::pair<int64_t, int64_t> projection_shape(const LlamaConfig& model,
                                             const std::string& gguf_module);

}  // namespace loom::models
