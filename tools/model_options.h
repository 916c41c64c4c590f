// Flags shared by the subcommands that run a model (generate, bench): the model file, the
// device, the context.
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "loom/loom.h"
#include "models/llama_model.h"

namespace loom::tools {

struct ModelFlags {
  std::string model;   // empty: the bundled model
  std::string device;  // empty: cuda when a GPU is present, else cpu
  int64_t context = 2048;
  std::string dtype;   // empty: the device's default
  bool dense = false;  // expand quantized weights instead of keeping their blocks
  bool exact = false;  // f32 products with quantized weights (no int8 activations)
  std::vector<std::string> disabled_passes;
  std::string lora;  // a PEFT LoRA adapter folder (docs/lora.md)
  double lora_scale = 1.0;
  bool lora_merge = false;

  void add_to(CLI::App& cmd);
  // Parses the device and dtype and fills load options, with progress lines on stderr.
  models::LlamaLoadOptions load_options(bool quiet) const;
  std::string model_path() const;
};

}  // namespace loom::tools
