// The hyper-parameters of a Llama-family model (Llama 2 and 3, SmolLM2, Mistral, Qwen2), read
// from GGUF metadata.
#pragma once

#include <cstdint>
#include <string>

namespace loom::io {
class GgufFile;
}

namespace loom::models {

struct LlamaConfig {
  std::string architecture;  // general.architecture: "llama", "qwen2", ...
  std::string name;          // general.name, for messages
  int64_t layers = 0;
  int64_t dim = 0;      // embedding width D
  int64_t ffn_dim = 0;  // MLP hidden width F
  int64_t heads = 0;    // query heads Hq
  int64_t kv_heads = 0;
  int64_t head_dim = 0;
  int64_t vocab = 0;
  int64_t context_length = 0;  // what the model was trained for
  double rms_eps = 1e-5;
  double rope_base = 10000.0;
  int64_t rope_dims = 0;  // features rotated per head (0: all)
  // GGUF files of the "llama" family store q and k permuted so that RoPE rotates adjacent
  // pairs (2i, 2i + 1); Qwen2 keeps Hugging Face's halves (i, i + D/2).
  bool rope_interleaved = true;
  bool qkv_bias = false;     // Qwen2
  bool tied_output = false;  // no output.weight: the logits reuse token_embd

  static LlamaConfig from_gguf(const io::GgufFile& file);
  std::string str() const;  // one line for logs
};

}  // namespace loom::models
