// libFuzzer entry for the PEFT adapter readers: the input is an adapter_config.json and an
// adapter_model.safetensors separated by the first NUL byte; both are read for a tiny Llama
// (that of tests/data/lora/make_lora.py). Any input must read or throw loom::Error (io or
// unsupported). Seeds: cat adapter_config.json; printf '\0'; cat adapter_model.safetensors.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "loom/error.h"
#include "models/lora_weights.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t nul = input.find('\0');
  if (nul == std::string_view::npos) return 0;
  loom::models::LlamaConfig model;
  model.architecture = "llama";
  model.layers = 2;
  model.dim = 64;
  model.ffn_dim = 96;
  model.heads = 4;
  model.kv_heads = 2;
  model.head_dim = 16;
  const auto* weights = reinterpret_cast<const std::byte*>(data) + nul + 1;
  try {
    auto config = loom::models::LoraConfig::parse(input.substr(0, nul), "config");
    auto file = loom::io::SafetensorsFile::from_bytes(
        std::vector<std::byte>(weights, reinterpret_cast<const std::byte*>(data) + size), "input");
    auto adapter = loom::models::LoraAdapter::from_files(config, file, model);
    for (const auto& [name, pair] : adapter.pairs)
      if (pair.a.size() != size_t(pair.rank * pair.in) ||
          pair.b.size() != size_t(pair.out * pair.rank))
        std::abort();
  } catch (const loom::Error& e) {
    if (e.kind() != loom::ErrorKind::io && e.kind() != loom::ErrorKind::unsupported) std::abort();
  }
  return 0;
}
