// The decode graph of a Llama-family GGUF model (one token per step), for `loom compile` and
// `loom view`: quantized weights kept in their GGUF blocks where the CPU has a kernel for the
// format (so a package can reference them in the file), the rest expanded to dense f32, as
// LlamaModel does on the CPU.
#pragma once

#include <string>

#include "loom/loom.h"

namespace loom::tools {

// True when `path` starts with the GGUF magic.
bool is_gguf(const std::string& path);
// The decode step's graph and its outputs (logits, next token), over a KV cache of `context`
// positions.
SavedGraph model_decode_graph(const std::string& gguf_path, int64_t context);

}  // namespace loom::tools
