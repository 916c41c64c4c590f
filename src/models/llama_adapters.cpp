// LlamaModel's unmerged LoRA adapters: the model's executables per set of targets, and the
// adapters' callees bound to them (docs/lora.md).
#include "models/llama_model.h"
#include "models/lora_apply.h"

namespace loom::models {

LlamaModel::Variant& LlamaModel::variant(const std::set<std::string>& targets) {
  auto it = variants_.find(targets);
  if (it != variants_.end()) return it->second;
  // After loading, the weights are the store's; the graph declares them by name and type.
  WeightSource from_store = [this](const std::string& name) {
    auto f = formats_.find(name);
    if (f == formats_.end()) fail(ErrorKind::io, "tensor '" + name + "' is missing");
    return LlamaWeight{store_->get(name), f->second};
  };
  auto compile_for = [&](Dim seq) {
    LlamaGraphOptions options = graph_options_;
    options.seq = seq;
    options.lora_targets = targets;
    // Decode keeps the model's dtype: its fused kernels read and write the caches as they are.
    if (!seq.is_static()) options.attention_dtype = prefill_attention_dtype_;
    LlamaGraph lg = build_llama_graph(config_, options, source_ ? source_ : from_store);
    CompileOptions co;
    co.device = device_;
    co.outputs = {lg.logits, lg.next_token};
    co.variables = store_;
    co.disabled_passes = disabled_passes_;
    ++graph_compilations_;
    return std::make_shared<Executable>(compile(lg.graph, co));
  };
  Variant v{compile_for(Dim("seq")), compile_for(Dim(1))};
  if (progress_ && !targets.empty())
    progress_("loom: compiled the model with LoRA calls on " + std::to_string(targets.size()) +
              " projections");
  return variants_.emplace(targets, std::move(v)).first->second;
}

void LlamaModel::load_adapter(const std::string& dir, const std::string& name, double scale) {
  if (name.empty()) fail(ErrorKind::value, "load_adapter: the adapter needs a name");
  LoraAdapter read = LoraAdapter::read(dir, config_);
  Adapter a;
  for (const auto& [target, pair] : read.pairs) a.targets.insert(target);
  a.callees = compile_lora_callees(read, scale, dtype_, graph_options_.batch, device_);
  adapters_[name] = std::move(a);
  if (progress_)
    progress_("loom: LoRA adapter '" + name + "' from " + dir + ": rank " +
              std::to_string(read.config.rank) + ", scaling " +
              std::to_string(read.config.scaling * scale) + ", " +
              std::to_string(read.pairs.size()) + " projections");
  if (name == active_name_) set_adapter(name);  // rebinds the new callees
}

void LlamaModel::set_adapter(const std::string& name) {
  if (name.empty()) {
    Variant& v = variant({});
    prefill_ = v.prefill;
    decode_ = v.decode;
    active_name_.clear();
    return;
  }
  auto it = adapters_.find(name);
  if (it == adapters_.end()) {
    std::string known;
    for (const auto& [n, a] : adapters_) known += (known.empty() ? "" : ", ") + n;
    fail(ErrorKind::value, "no LoRA adapter named '" + name + "' is loaded" +
                               (known.empty() ? std::string() : " (loaded: " + known + ")"));
  }
  Variant& v = variant(it->second.targets);
  for (const auto& [symbol, callee] : it->second.callees) {
    v.prefill->bind(symbol, callee);
    v.decode->bind(symbol, callee);
  }
  prefill_ = v.prefill;
  decode_ = v.decode;
  active_name_ = name;
}

std::vector<std::string> LlamaModel::adapters() const {
  std::vector<std::string> out;
  for (const auto& [name, a] : adapters_) out.push_back(name);
  return out;
}

}  // namespace loom::models
