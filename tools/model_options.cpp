#include "model_options.h"

#include <cstdio>

#include "flags.h"
#include "models/generation.h"

namespace loom::tools {

void ModelFlags::add_to(CLI::App& cmd) {
  cmd.add_option("-m,--model", model, "GGUF model file (default: the bundled SmolLM2-135M)");
  cmd.add_option("--device", device, "cpu or cuda[:N] (default: cuda when a GPU is present)");
  cmd.add_option("-c,--context", context, "KV cache positions")
      ->check(positive_integer(int64_t(1) << 20));
  cmd.add_option("--dtype", dtype,
                 "activations, KV cache and dense weights: f32, f16 or bf16 (default: f32; f16 "
                 "on CUDA with --dense)");
  cmd.add_flag("--dense", dense,
               "expand quantized weights to --dtype at load (default: keep their GGUF blocks "
               "and multiply by them directly)");
  cmd.add_flag("--exact-matmul", exact,
               "compute exactly in f32 (slower): by default the CPU rounds activations to int8 "
               "per block of 32 for integer dot products with quantized weights (as llama.cpp "
               "does), and CUDA rounds prefill's activations to f16 for tensor-core projections "
               "and attention");
  cmd.add_option("--disable-pass", disabled_passes,
                 "leave out a compiler pass by name (repeatable), e.g. fuse_qkv_rope to measure "
                 "what it gains (the passes are listed in DESIGN.md)");
  cmd.add_option("--lora", lora,
                 "PEFT LoRA adapter folder (adapter_config.json + adapter_model.safetensors)")
      ->check(CLI::ExistingDirectory);
  cmd.add_option("--lora-scale", lora_scale,
                 "multiplies the adapter's own scaling (lora_alpha / r)")
      ->check(CLI::Range(-1e6, 1e6));
  cmd.add_flag("--lora-merge", lora_merge,
               "fold the adapter into the weights at load (targeted quantized weights become "
               "dense); default: keep it apart, as small matmuls beside the weights");
}

std::string ModelFlags::model_path() const {
  return model.empty() ? models::default_model_path() : model;
}

models::LlamaLoadOptions ModelFlags::load_options(bool quiet) const {
  models::LlamaLoadOptions o;
  o.device =
      device.empty() ? (cuda_available() ? Device::cuda() : Device::cpu()) : Device::parse(device);
  o.context = context;
  o.quantized = !dense;
  o.int8_activations = !exact;
  o.disabled_passes = disabled_passes;
  if (lora.empty() && (lora_merge || lora_scale != 1.0))
    fail(ErrorKind::value, "--lora-scale and --lora-merge need --lora DIR");
  o.lora = lora;
  o.lora_scale = lora_scale;
  o.lora_merge = lora_merge;
  if (!dtype.empty()) {
    DType d = dtype_from_name(dtype);
    if (d != DType::f32 && d != DType::f16 && d != DType::bf16)
      fail(ErrorKind::value, "--dtype must be f32, f16 or bf16, not " + dtype);
    o.dtype = d;
  }
  if (!quiet)
    o.progress = [](const std::string& line) { std::fprintf(stderr, "%s\n", line.c_str()); };
  return o;
}

}  // namespace loom::tools
