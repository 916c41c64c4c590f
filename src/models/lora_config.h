// LoraConfig: a PEFT LoRA adapter's adapter_config.json (the fields Loom uses), and the
// mapping of PEFT's module names to the Llama GGUF tensor names.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace loom::models {

struct LoraConfig {
  int64_t rank = 0;     // "r"
  double alpha = 8;     // "lora_alpha" (PEFT's default 8)
  bool rslora = false;  // "use_rslora": scaling alpha / sqrt(r) instead of alpha / r
  double scaling = 0;   // what PEFT multiplies B A x by
  std::vector<std::string> target_modules;  // PEFT names ("q_proj", ...), sorted, unique

  // Parses the JSON text; `label` names the file in errors. Every malformed or unsupported
  // field is a loom::Error (io, or unsupported for PEFT features Loom does not implement).
  static LoraConfig parse(std::string_view json_text, const std::string& label);
  static LoraConfig read(const std::string& path);
};

// "q_proj" -> "attn_q", "o_proj" -> "attn_output", "gate_proj" -> "ffn_gate", ...; "" for a
// name that is not one of the seven Llama projections.
std::string gguf_module_name(std::string_view peft_name);
// "self_attn" or "mlp": the PEFT module's parent in Hugging Face's Llama.
std::string peft_module_parent(std::string_view peft_name);

}  // namespace loom::models
