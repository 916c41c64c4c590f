// Reads a tokenizer's description from GGUF metadata (the tokenizer.ggml.* keys that
// llama.cpp's converters write, and tokenizer.chat_template).
#pragma once

#include "io/gguf.h"
#include "models/tokenizer.h"

namespace loom::models {

// Throws loom::Error when a key the tokenizer needs is missing or holds the wrong type.
TokenizerSpec tokenizer_spec_from_gguf(const io::GgufFile& file);

}  // namespace loom::models
