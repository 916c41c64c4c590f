// A Llama-family model ready to run: weights loaded from a GGUF file into one VariableStore,
// a prefill executable (any number of tokens) and a decode executable (one token) sharing
// it, and the KV cache position.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "loom/loom.h"
#include "models/llama_config.h"
#include "models/llama_graph.h"

namespace loom::io {
class GgufFile;
struct GgufTensorInfo;
}  // namespace loom::io

namespace loom::models {

struct LlamaLoadOptions {
  Device device = Device::cpu();
  int64_t context = 2048;  // KV cache positions; capped at the model's context length
  // Keep quantized weights in their GGUF blocks (quantized_matmul reads them as they are)
  // where the device has a kernel for the format; false expands every weight to `dtype`.
  bool quantized = true;
  // Let kernels round f32 activations: on the CPU to int8 per block of 32 for integer dot
  // products with quantized weights (Q4_0, Q4_1, Q8_0; as llama.cpp does); on CUDA, in
  // prefill, to f16 for the tensor cores (quantized projections and attention). false
  // computes exactly in f32.
  bool int8_activations = true;
  // Activations, the KV cache and dense weights. Default: f32, except f16 on CUDA when
  // every weight is dense (quantized_matmul gives f32, so f32 saves a cast per projection).
  std::optional<DType> dtype;
  // The dtype prefill's attention computes in (q and the caches cast to it, the caches kept
  // in `dtype`). Default: f16 on CUDA for an f32 model with int8_activations (the
  // tensor-core kernel takes f16 and bf16), else `dtype`. Decode always uses `dtype`.
  std::optional<DType> prefill_attention_dtype;
  // Compiler passes to leave out by name (CompileOptions::disabled_passes), e.g. to measure
  // what a fusion gains.
  std::vector<std::string> disabled_passes;
  // Called with a line of progress text while loading and compiling.
  std::function<void(const std::string&)> progress;
  // A PEFT LoRA adapter folder (docs/lora.md) applied from the start, its scaling times
  // `lora_scale`: unmerged (the adapter "default", swappable with set_adapter), or with
  // `lora_merge` folded into the weights it targets (those become dense).
  std::string lora;
  double lora_scale = 1.0;
  bool lora_merge = false;
};

// One weight of a GGUF file as build_llama_graph takes it: its blocks as they are when
// `keep_blocks` and `device` has quantized kernels for the format (2-D weights only), else
// expanded once to `dtype`. With `mapping` (an owner that keeps `file`'s mapping alive), CPU
// weights used as they are (blocks, f32/f16 tensors of `dtype`) read the mapping without a
// copy; never write to them (a VariableStore copies before its first write).
LlamaWeight load_llama_weight(const io::GgufFile& file, const io::GgufTensorInfo& info, DType dtype,
                              bool keep_blocks, Device device,
                              const std::shared_ptr<void>& mapping = nullptr);

class LlamaModel {
 public:
  static LlamaModel load(const std::string& gguf_path, const LlamaLoadOptions& options = {});

  const LlamaConfig& config() const { return config_; }
  Device device() const { return device_; }
  DType dtype() const { return dtype_; }
  // Weights kept in GGUF blocks, and their bytes (the rest are dense of dtype()).
  int64_t quantized_weights() const { return quantized_weights_; }
  int64_t weight_bytes() const { return weight_bytes_; }
  int64_t context() const { return context_; }
  int64_t position() const { return position_; }  // tokens in the cache
  void reset() { position_ = 0; }

  // Runs `tokens` at the current position (prefill when there are several, a decode step
  // when there is one) and returns the logits of the last one (empty when `want_logits` is
  // false: greedy decoding needs only greedy_token(), and the logits stay on the device).
  // Throws loom::Error(value) when the cache would overflow.
  std::span<const float> forward(std::span<const int32_t> tokens, bool want_logits = true);
  // What the last decode step ran (kernel count, whether a CUDA graph was replayed).
  const RunStats& decode_stats() const { return decode_->last_run_stats(); }
  // Times each node of one decode step of `token` at the current position (the cache row is
  // written; the position does not advance).
  std::vector<NodeTime> profile_decode(int32_t token);
  // Times each node of a prefill of `tokens` from position 0 (the cache rows are written;
  // the position does not advance). Throws loom::Error(value) for bad tokens or too many.
  std::vector<NodeTime> profile_prefill(std::span<const int32_t> tokens);
  // What the last prefill ran.
  const RunStats& prefill_stats() const { return prefill_->last_run_stats(); }
  // The greedy next token of the last forward().
  int32_t greedy_token() const { return greedy_; }

  // Unmerged LoRA adapters (docs/lora.md). load_adapter reads a PEFT folder and compiles its
  // small executables under `name` (replacing an adapter of that name); set_adapter makes the
  // following forward() calls use one ("" for none). The model's graph is compiled once per
  // set of targeted projections (the first adapter of each set compiles it); after that,
  // switching adapters binds callables and recompiles nothing. The KV cache is kept.
  void load_adapter(const std::string& dir, const std::string& name, double scale = 1.0);
  void set_adapter(const std::string& name);
  const std::string& adapter() const { return active_name_; }
  std::vector<std::string> adapters() const;
  // Model graphs compiled so far (prefill and decode count one each); adapters' own small
  // executables are not counted.
  int64_t graph_compilations() const { return graph_compilations_; }

 private:
  struct Variant {  // the model's executables for one set of LoRA targets (empty: none)
    std::shared_ptr<Executable> prefill, decode;
  };
  struct Adapter {
    std::set<std::string> targets;
    std::map<std::string, std::shared_ptr<Executable>> callees;  // by call symbol
  };
  Variant& variant(const std::set<std::string>& targets);
  WeightSource source_;  // while loading: the weights read; after: null (the store's)
  std::function<void(const std::string&)> progress_;
  LlamaGraphOptions graph_options_;
  std::set<std::string> disabled_passes_;       // LlamaLoadOptions::disabled_passes
  std::map<std::string, std::string> formats_;  // weight name -> its format ("" dense)
  std::map<std::set<std::string>, Variant> variants_;
  std::map<std::string, Adapter> adapters_;
  std::string active_name_;
  int64_t graph_compilations_ = 0;

  LlamaConfig config_;
  Device device_;
  DType dtype_ = DType::f32;
  DType prefill_attention_dtype_ = DType::f32;  // LlamaLoadOptions::prefill_attention_dtype
  int64_t context_ = 0;
  int64_t position_ = 0;
  int64_t quantized_weights_ = 0;
  int64_t weight_bytes_ = 0;
  std::shared_ptr<VariableStore> store_;
  std::shared_ptr<Executable> prefill_, decode_;  // of the active variant
  // The graph's feeds for `tokens` at positions start, start + 1, ...
  Feeds feeds_for(std::span<const int32_t> tokens, int64_t start) const;

  std::vector<TensorData> outputs_;
  std::vector<float> logits_;
  int32_t greedy_ = 0;
};

}  // namespace loom::models
