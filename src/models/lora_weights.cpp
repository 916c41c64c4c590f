#include "models/lora_weights.h"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <filesystem>

#include "loom/error.h"
#include "loom/half.h"

namespace loom::models {

namespace {

constexpr std::string_view kPrefix = "base_model.model.model.layers.";

// A tensor name taken apart: layer, PEFT module, and 'A' or 'B'; layer -1 when it is not
// of the form base_model.model.model.layers.N.<parent>.<module>.lora_<A|B>.weight.
struct Parsed {
  int64_t layer = -1;
  std::string module;
  char which = 0;
};

Parsed parse_name(std::string_view name) {
  Parsed p;
  if (!name.starts_with(kPrefix)) return p;
  name.remove_prefix(kPrefix.size());
  int64_t layer = -1;
  auto [end, ec] = std::from_chars(name.data(), name.data() + name.size(), layer);
  if (ec != std::errc() || end == name.data() || layer < 0) return p;
  name.remove_prefix(size_t(end - name.data()));
  for (char which : {'A', 'B'}) {
    std::string suffix = std::string(".lora_") + which + ".weight";
    if (!name.ends_with(suffix)) continue;
    std::string_view middle = name.substr(0, name.size() - suffix.size());  // .<parent>.<module>
    size_t dot = middle.rfind('.');
    if (!middle.starts_with('.') || dot == 0 || dot == std::string_view::npos) return p;
    std::string module(middle.substr(dot + 1));
    if (peft_module_parent(module) != middle.substr(1, dot - 1)) return p;
    return {layer, module, which};
  }
  return p;
}

// The tensor's values as f32 (F32, F16 or BF16 in the file).
std::vector<float> to_f32(const io::SafetensorsFile& file, const io::SafetensorsTensorInfo& t) {
  std::span<const std::byte> bytes = file.tensor_bytes(t);
  std::vector<float> out(size_t(t.numel));
  const std::string dtype = t.dtype->name;
  for (size_t i = 0; i < out.size(); ++i) {
    if (dtype == "F32") {
      std::memcpy(&out[i], bytes.data() + 4 * i, 4);
      continue;
    }
    uint16_t bits;
    std::memcpy(&bits, bytes.data() + 2 * i, 2);
    out[i] = dtype == "F16" ? f16_to_float(bits) : bf16_to_float(bits);
  }
  return out;
}

// Hugging Face's q/k rows per head are [2, hd/2] (RoPE rotates the two halves); the GGUF
// converter permuted the base weights to [hd/2, 2] (adjacent pairs), so B's rows follow.
std::vector<float> permute_rows_to_gguf(const std::vector<float>& b, int64_t heads,
                                        int64_t head_dim, int64_t rank) {
  std::vector<float> out(b.size());
  const int64_t half = head_dim / 2;
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t i = 0; i < half; ++i)
      for (int64_t j = 0; j < 2; ++j) {
        const float* src = &b[size_t((h * head_dim + j * half + i) * rank)];
        std::copy(src, src + rank, &out[size_t((h * head_dim + 2 * i + j) * rank)]);
      }
  return out;
}

std::string shape_str(const Extents& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

}  // namespace

std::pair<int64_t, int64_t> projection_shape(const LlamaConfig& m, const std::string& module) {
  if (module == "attn_q") return {m.dim, m.heads * m.head_dim};
  if (module == "attn_k" || module == "attn_v") return {m.dim, m.kv_heads * m.head_dim};
  if (module == "attn_output") return {m.heads * m.head_dim, m.dim};
  if (module == "ffn_gate" || module == "ffn_up") return {m.dim, m.ffn_dim};
  if (module == "ffn_down") return {m.ffn_dim, m.dim};
  fail(ErrorKind::internal, "projection_shape: unknown module " + module);
}

LoraAdapter LoraAdapter::from_files(const LoraConfig& config, const io::SafetensorsFile& file,
                                    const LlamaConfig& model) {
  auto bad = [&](const std::string& tensor, const std::string& what) {
    return Error(ErrorKind::io, file.path() + ": tensor '" + tensor + "' " + what);
  };
  LoraAdapter adapter;
  adapter.config = config;
  const int64_t r = config.rank;
  for (const auto& t : file.tensors()) {
    Parsed p = parse_name(t.name);
    if (p.layer < 0)
      throw bad(t.name, "is not a LoRA weight of a Llama projection (expected " +
                            std::string(kPrefix) + "N.<self_attn|mlp>.<module>.lora_<A|B>.weight)");
    if (p.layer >= model.layers)
      throw bad(t.name, "is for layer " + std::to_string(p.layer) + "; the model has " +
                            std::to_string(model.layers));
    const auto& targets = config.target_modules;
    if (std::find(targets.begin(), targets.end(), p.module) == targets.end())
      throw bad(t.name, "is for " + p.module + ", which adapter_config.json does not target");
    const std::string dtype = t.dtype->name;
    if (dtype != "F32" && dtype != "F16" && dtype != "BF16")
      throw bad(t.name, "is " + dtype + "; LoRA weights must be F32, F16 or BF16");
    const std::string module = gguf_module_name(p.module);
    auto [in, out] = projection_shape(model, module);
    Extents want = p.which == 'A' ? Extents{r, in} : Extents{out, r};
    if (t.shape != want)
      throw bad(t.name, "is " + shape_str(t.shape) + ", expected " + shape_str(want) + " (rank " +
                            std::to_string(r) + ")");
    LoraPair& pair = adapter.pairs["blk." + std::to_string(p.layer) + "." + module];
    pair.rank = r;
    pair.in = in;
    pair.out = out;
    std::vector<float> values = to_f32(file, t);
    if (p.which == 'A') {
      pair.a = std::move(values);
      continue;
    }
    const bool q = module == "attn_q", k = module == "attn_k";
    if (model.rope_interleaved && (q || k)) {
      if (model.head_dim % 2) throw bad(t.name, "is for a model of odd head dim");
      values = permute_rows_to_gguf(values, q ? model.heads : model.kv_heads, model.head_dim, r);
    }
    pair.b = std::move(values);
  }
  for (int64_t layer = 0; layer < model.layers; ++layer)
    for (const auto& m : config.target_modules) {
      auto it = adapter.pairs.find("blk." + std::to_string(layer) + "." + gguf_module_name(m));
      for (char which : {'A', 'B'})
        if (it == adapter.pairs.end() || (which == 'A' ? it->second.a : it->second.b).empty())
          throw bad(std::string(kPrefix) + std::to_string(layer) + "." + peft_module_parent(m) +
                        "." + m + ".lora_" + which + ".weight",
                    "is missing");
    }
  return adapter;
}

LoraAdapter LoraAdapter::read(const std::string& dir, const LlamaConfig& model) {
  namespace fs = std::filesystem;
  if (!fs::is_directory(dir))
    fail(ErrorKind::io, dir +
                            ": not a directory (a PEFT adapter is a folder holding "
                            "adapter_config.json and adapter_model.safetensors)");
  LoraConfig config = LoraConfig::read((fs::path(dir) / "adapter_config.json").string());
  const fs::path weights = fs::path(dir) / "adapter_model.safetensors";
  if (!fs::exists(weights))
    fail(ErrorKind::io, weights.string() +
                            " is missing (adapter_model.bin, PyTorch's pickle, is not read: "
                            "save the adapter with safe_serialization=True)");
  return from_files(config, io::SafetensorsFile::open(weights.string()), model);
}

}  // namespace loom::models
