#include "model_graph.h"

#include <fstream>

#include "io/gguf.h"
#include "models/llama_config.h"
#include "models/llama_graph.h"
#include "models/llama_model.h"

namespace loom::tools {

bool is_gguf(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {};
  in.read(magic, 4);
  return in && std::string(magic, 4) == "GGUF";
}

SavedGraph model_decode_graph(const std::string& gguf_path, int64_t context) {
  io::GgufFile file = io::GgufFile::open(gguf_path);
  models::LlamaConfig config = models::LlamaConfig::from_gguf(file);
  models::LlamaGraphOptions options;
  options.seq = Dim(1);
  options.cache_capacity = std::min(context, config.context_length);
  models::LlamaGraph lg = models::build_llama_graph(config, options, [&](const std::string& name) {
    const auto* info = file.find_tensor(name);
    if (!info) fail(ErrorKind::io, gguf_path + ": tensor '" + name + "' is missing");
    return models::load_llama_weight(file, *info, DType::f32, true, Device::cpu());
  });
  return {lg.graph, {lg.logits, lg.next_token}};
}

}  // namespace loom::tools
