#include "models/llama_config.h"

#include "io/gguf.h"
#include "loom/error.h"

namespace loom::models {

namespace {

// Architectures whose graph is the Llama block: RMSNorm, RoPE attention with GQA, SwiGLU.
struct ArchitectureTraits {
  const char* name;
  bool rope_interleaved;
  bool qkv_bias;
};
constexpr ArchitectureTraits kArchitectures[] = {
    {"llama", true, false},
    {"mistral", true, false},
    {"qwen2", false, true},
};

}  // namespace

LlamaConfig LlamaConfig::from_gguf(const io::GgufFile& file) {
  LlamaConfig c;
  c.architecture = file.get_string("general.architecture");
  const ArchitectureTraits* traits = nullptr;
  for (const auto& a : kArchitectures)
    if (c.architecture == a.name) traits = &a;
  if (!traits)
    fail(ErrorKind::unsupported, file.path() + ": architecture '" + c.architecture +
                                     "' is not one Loom builds (llama, mistral, qwen2)");
  c.name = file.has("general.name") ? file.get_string("general.name") : c.architecture;
  const std::string a = c.architecture + ".";
  c.layers = file.get_int(a + "block_count");
  c.dim = file.get_int(a + "embedding_length");
  c.ffn_dim = file.get_int(a + "feed_forward_length");
  c.heads = file.get_int(a + "attention.head_count");
  c.kv_heads = file.has(a + "attention.head_count_kv") ? file.get_int(a + "attention.head_count_kv")
                                                       : c.heads;
  c.context_length = file.has(a + "context_length") ? file.get_int(a + "context_length") : 2048;
  c.rms_eps = file.get_float(a + "attention.layer_norm_rms_epsilon");
  if (file.has(a + "rope.freq_base")) c.rope_base = file.get_float(a + "rope.freq_base");
  c.rope_interleaved = traits->rope_interleaved;
  c.qkv_bias = traits->qkv_bias;

  auto positive = [&](int64_t v, const char* what) {
    if (v <= 0 || v > (int64_t(1) << 24))
      fail(ErrorKind::io, file.path() + ": " + what + " " + std::to_string(v) + " is out of range");
  };
  positive(c.layers, "block_count");
  positive(c.dim, "embedding_length");
  positive(c.ffn_dim, "feed_forward_length");
  positive(c.heads, "attention.head_count");
  positive(c.kv_heads, "attention.head_count_kv");
  if (c.heads % c.kv_heads != 0)
    fail(ErrorKind::io, file.path() + ": " + std::to_string(c.heads) + " query heads are not a " +
                            "multiple of " + std::to_string(c.kv_heads) + " key/value heads");
  c.head_dim = file.has(a + "attention.key_length") ? file.get_int(a + "attention.key_length")
                                                    : c.dim / c.heads;
  positive(c.head_dim, "head dim");
  c.rope_dims =
      file.has(a + "rope.dimension_count") ? file.get_int(a + "rope.dimension_count") : c.head_dim;
  if (c.rope_dims <= 0 || c.rope_dims > c.head_dim || c.rope_dims % 2)
    fail(ErrorKind::io, file.path() + ": rope.dimension_count " + std::to_string(c.rope_dims) +
                            " does not fit head dim " + std::to_string(c.head_dim));
  if (!(c.rms_eps > 0) || !(c.rope_base > 0))
    fail(ErrorKind::io, file.path() + ": layer_norm_rms_epsilon and rope.freq_base must be > 0");

  const io::GgufTensorInfo* embd = file.find_tensor("token_embd.weight");
  if (!embd || embd->shape.size() != 2 || embd->shape[1] != c.dim)
    fail(ErrorKind::io, file.path() + ": token_embd.weight is missing or not [vocab, " +
                            std::to_string(c.dim) + "]");
  c.vocab = embd->shape[0];
  c.tied_output = file.find_tensor("output.weight") == nullptr;
  return c;
}

std::string LlamaConfig::str() const {
  return name + " (" + architecture + "): " + std::to_string(layers) + " layers, D " +
         std::to_string(dim) + ", F " + std::to_string(ffn_dim) + ", heads " +
         std::to_string(heads) + "/" + std::to_string(kv_heads) + " x " + std::to_string(head_dim) +
         ", vocab " + std::to_string(vocab);
}

}  // namespace loom::models
