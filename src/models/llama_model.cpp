#include "models/llama_model.h"

#include <chrono>
#include <cstring>
#include <map>
#include <optional>

#include "io/ggml_dequantize.h"
#include "io/gguf.h"
#include "loom/quant.h"
#include "models/llama_graph.h"
#include "models/lora_apply.h"

namespace loom::models {

namespace {

using quant::find_gguf_format;

// f32 -> f16 or bf16, rounding to nearest even.
TensorData narrow(const TensorData& f32, DType dtype) {
  if (dtype != DType::f16 && dtype != DType::bf16)
    fail(ErrorKind::dtype,
         std::string("model weights can be f32, f16 or bf16, not ") + dtype_name(dtype));
  TensorData out = TensorData::empty(dtype, f32.shape());
  const float* src = static_cast<const float*>(f32.data());
  uint16_t* dst = static_cast<uint16_t*>(out.data());
  const int64_t n = f32.numel();
  for (int64_t i = 0; i < n; ++i)
    dst[i] = dtype == DType::f16 ? float_to_f16(src[i]) : float_to_bf16(src[i]);
  return out;
}

}  // namespace

// The file's bytes of a tensor as a TensorData: the mapping itself (kept alive by `mapping`)
// where the weight is used as it is, else a copy. On the CPU kernels read it in place (they
// use unaligned loads; GGUF aligns tensors to 32 bytes by default, and a file that does not
// gets copies); another device's store uploads it.
static TensorData file_bytes(const io::GgufFile& file, const io::GgufTensorInfo& info, DType dtype,
                             Extents shape, const std::shared_ptr<void>& mapping, Device device) {
  std::span<const std::byte> bytes = file.tensor_bytes(info);
  auto at = reinterpret_cast<uintptr_t>(bytes.data());
  if (mapping && (device.kind != DeviceKind::cpu || at % 32 == 0)) {
    // Never written: the store copies a variable before its first write (VariableStore).
    Strides strides = contiguous_strides(shape);
    return TensorData::wrap(const_cast<std::byte*>(bytes.data()), dtype, std::move(shape),
                            std::move(strides), Device::cpu(), mapping);
  }
  TensorData copy = TensorData::empty(dtype, std::move(shape));
  std::memcpy(copy.data(), bytes.data(), bytes.size());
  return copy;
}

// The weight as the graph gets it: its GGUF blocks as they are when `keep_blocks` and the
// device has quantized kernels for the format, else expanded once to `dtype` (f32 and f16
// tensors of that dtype as they are).
LlamaWeight load_llama_weight(const io::GgufFile& file, const io::GgufTensorInfo& info, DType dtype,
                              bool keep_blocks, Device device,
                              const std::shared_ptr<void>& mapping) {
  const quant::GgufFormat* format = find_gguf_format(uint32_t(info.type));
  bool kernel_exists = format && info.traits->is_quantized &&
                       (device.kind == DeviceKind::cpu || format->block_size == 32);
  if (keep_blocks && kernel_exists && info.shape.size() == 2) {
    const int64_t rows = info.shape[0];
    const int64_t row_bytes =
        info.shape[1] / info.traits->block_size * info.traits->bytes_per_block;
    return {file_bytes(file, info, DType::u8, {rows, row_bytes}, mapping, device), format->name};
  }
  if ((info.type == io::GgmlType::F32 && dtype == DType::f32) ||
      (info.type == io::GgmlType::F16 && dtype == DType::f16))
    return {file_bytes(file, info, dtype, info.shape, mapping, device), ""};
  TensorData f32 = TensorData::empty(DType::f32, info.shape);
  io::dequantize_ggml(info.type, file.tensor_bytes(info), info.numel,
                      static_cast<float*>(f32.data()));
  return {dtype == DType::f32 ? f32 : narrow(f32, dtype), ""};
}

LlamaModel LlamaModel::load(const std::string& gguf_path, const LlamaLoadOptions& options) {
  auto say = [&](const std::string& line) {
    if (options.progress) options.progress(line);
  };
  auto start = std::chrono::steady_clock::now();
  auto seconds = [&] {
    return std::to_string(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  };
  LlamaModel m;
  // Shared: CPU weights read the mapping itself, which lives as long as they do.
  auto mapped = std::make_shared<io::GgufFile>(io::GgufFile::open(gguf_path));
  const io::GgufFile& file = *mapped;
  m.config_ = LlamaConfig::from_gguf(file);
  m.device_ = options.device;
  if (options.context <= 0) fail(ErrorKind::value, "context must be positive");
  m.context_ = std::min(options.context, m.config_.context_length);
  say("loom: " + m.config_.str());

  bool any_quantized = false;
  for (const auto& info : file.tensors())
    if (options.quantized && info.traits->is_quantized && info.shape.size() == 2)
      any_quantized = true;
  m.dtype_ = options.dtype.value_or(
      options.device.kind == DeviceKind::cpu || any_quantized ? DType::f32 : DType::f16);
  // --lora-merge: the targeted weights are expanded to f32 and W + s B A stored dense.
  std::optional<LoraAdapter> merged;
  if (!options.lora.empty() && options.lora_merge)
    merged = LoraAdapter::read(options.lora, m.config_);
  std::map<std::string, LlamaWeight> weights;
  for (const auto& info : file.tensors()) {
    // The adapter's pair for this weight ("blk.3.attn_q.weight" -> "blk.3.attn_q"), if any.
    const LoraPair* pair = nullptr;
    if (merged && info.name.ends_with(".weight")) {
      auto it = merged->pairs.find(info.name.substr(0, info.name.size() - 7));
      if (it != merged->pairs.end()) pair = &it->second;
    }
    LlamaWeight w =
        pair ? merge_lora(file, info, *pair, merged->config.scaling * options.lora_scale, m.dtype_)
             : load_llama_weight(file, info, m.dtype_, options.quantized, options.device, mapped);
    m.quantized_weights_ += w.format.empty() ? 0 : 1;
    m.weight_bytes_ += int64_t(w.data.nbytes());
    m.formats_[info.name] = w.format;
    weights.emplace(info.name, std::move(w));
  }
  say("loom: " + std::to_string(m.quantized_weights_) + " weights kept quantized, " +
      std::to_string(int64_t(weights.size()) - m.quantized_weights_) + " " + dtype_name(m.dtype_) +
      "; " + std::to_string(m.weight_bytes_ >> 20) + " MiB in " + seconds() + " s" +
      (merged ? "; LoRA " + options.lora + " merged into " + std::to_string(merged->pairs.size()) +
                    " of them"
              : ""));
  // The first compile declares the weights in the store from this map; later ones (other
  // LoRA targets) find them there.
  m.source_ = [&](const std::string& name) -> LlamaWeight {
    auto it = weights.find(name);
    if (it == weights.end()) fail(ErrorKind::io, gguf_path + ": tensor '" + name + "' is missing");
    return it->second;
  };

  m.store_ = std::make_shared<VariableStore>(m.device_);
  m.graph_options_.cache_capacity = m.context_;
  m.graph_options_.dtype = m.dtype_;
  m.graph_options_.int8_activations = options.int8_activations;
  if (options.prefill_attention_dtype && !is_float(*options.prefill_attention_dtype))
    fail(ErrorKind::dtype, std::string("prefill attention computes in f32, f16 or bf16, not ") +
                               dtype_name(*options.prefill_attention_dtype));
  // Prefill of an f32 model on CUDA with rounded activations allowed: attention in f16, on
  // tensor cores (their kernel takes f16 and bf16 only).
  m.prefill_attention_dtype_ = options.prefill_attention_dtype.value_or(
      m.device_.kind == DeviceKind::cuda && m.dtype_ == DType::f32 && options.int8_activations
          ? DType::f16
          : m.dtype_);
  m.disabled_passes_ = {options.disabled_passes.begin(), options.disabled_passes.end()};
  m.progress_ = options.progress;
  if (!options.lora.empty() && !options.lora_merge) {
    m.load_adapter(options.lora, "default", options.lora_scale);
    m.set_adapter("default");
  } else {
    m.set_adapter("");
  }
  say("loom: compiled prefill and decode for " + m.device_.str() + " in " + seconds() + " s");
  m.source_ = nullptr;  // `weights` goes; the store has them all now
  return m;
}

Feeds LlamaModel::feeds_for(std::span<const int32_t> tokens, int64_t start) const {
  const int64_t n = int64_t(tokens.size());
  std::vector<int64_t> positions(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) positions[size_t(i)] = start + i;
  return Feeds{
      {"tokens", TensorData::from_vector<int32_t>({tokens.begin(), tokens.end()}, {1, n})},
      {"positions", TensorData::from_vector<int64_t>(positions, {n})},
      {"cache_starts", TensorData::from_vector<int64_t>({0, 0, start, 0}, {4})},
      {"last", TensorData::from_vector<int64_t>({n - 1}, {1})},
  };
}

std::span<const float> LlamaModel::forward(std::span<const int32_t> tokens, bool want_logits) {
  const int64_t n = int64_t(tokens.size());
  if (n == 0) fail(ErrorKind::value, "forward: no tokens");
  if (position_ + n > context_)
    fail(ErrorKind::value, "the context of " + std::to_string(context_) + " tokens is full (" +
                               std::to_string(position_) + " used, " + std::to_string(n) +
                               " more asked for); raise --context");
  for (int32_t t : tokens)
    if (t < 0 || t >= config_.vocab)
      fail(ErrorKind::value, "token id " + std::to_string(t) + " is outside the vocabulary of " +
                                 std::to_string(config_.vocab));
  Executable& exe = n == 1 ? *decode_ : *prefill_;
  exe.run(feeds_for(tokens, position_), outputs_);
  position_ += n;
  greedy_ = int32_t(outputs_[1].to_host().to_vector<int64_t>().at(0));
  if (!want_logits) return {};
  logits_ = outputs_[0].to_host().to_vector<float>();
  return logits_;
}

std::vector<NodeTime> LlamaModel::profile_prefill(std::span<const int32_t> tokens) {
  if (tokens.size() < 2 || int64_t(tokens.size()) > context_)
    fail(ErrorKind::value, "profile_prefill: between 2 tokens and the context's " +
                               std::to_string(context_) + " are needed");
  for (int32_t t : tokens)
    if (t < 0 || t >= config_.vocab) fail(ErrorKind::value, "profile_prefill: bad token");
  return prefill_->profile(feeds_for(tokens, 0));
}

std::vector<NodeTime> LlamaModel::profile_decode(int32_t token) {
  if (token < 0 || token >= config_.vocab || position_ >= context_)
    fail(ErrorKind::value, "profile_decode: bad token or a full context");
  return decode_->profile(feeds_for(std::span(&token, 1), position_));
}

}  // namespace loom::models
