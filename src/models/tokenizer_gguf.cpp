#include "models/tokenizer_gguf.h"

#include <limits>

#include "loom/error.h"

namespace loom::models {

namespace {

int32_t token_id(const io::GgufFile& file, std::string_view key) {
  if (!file.has(key)) return -1;
  int64_t id = file.get_int(key);
  if (id < 0 || id > std::numeric_limits<int32_t>::max())
    fail(ErrorKind::io, std::string(key) + " is " + std::to_string(id) + ", not a token id");
  return int32_t(id);
}

std::optional<bool> optional_bool(const io::GgufFile& file, std::string_view key) {
  if (!file.has(key)) return std::nullopt;
  return file.get_bool(key);
}

}  // namespace

TokenizerSpec tokenizer_spec_from_gguf(const io::GgufFile& file) {
  TokenizerSpec spec;
  spec.model = file.get_string("tokenizer.ggml.model");
  if (file.has("tokenizer.ggml.pre")) spec.pre = file.get_string("tokenizer.ggml.pre");
  spec.tokens = file.get_string_array("tokenizer.ggml.tokens");
  if (file.has("tokenizer.ggml.scores"))
    for (double s : file.get_float_array("tokenizer.ggml.scores")) spec.scores.push_back(float(s));
  if (file.has("tokenizer.ggml.token_type"))
    for (int64_t t : file.get_int_array("tokenizer.ggml.token_type")) {
      if (t < 0 || t > 6)
        fail(ErrorKind::io,
             "tokenizer.ggml.token_type holds " + std::to_string(t) + ", not a token type (0-6)");
      spec.token_types.push_back(int32_t(t));
    }
  if (file.has("tokenizer.ggml.merges"))
    spec.merges = file.get_string_array("tokenizer.ggml.merges");
  spec.bos_id = token_id(file, "tokenizer.ggml.bos_token_id");
  spec.eos_id = token_id(file, "tokenizer.ggml.eos_token_id");
  spec.unk_id = token_id(file, "tokenizer.ggml.unknown_token_id");
  spec.pad_id = token_id(file, "tokenizer.ggml.padding_token_id");
  spec.eot_id = token_id(file, "tokenizer.ggml.eot_token_id");
  // llama.cpp's defaults when the keys are absent: SentencePiece models start with BOS.
  spec.add_bos =
      optional_bool(file, "tokenizer.ggml.add_bos_token").value_or(spec.model == "llama");
  spec.add_eos = optional_bool(file, "tokenizer.ggml.add_eos_token").value_or(false);
  spec.add_space_prefix = optional_bool(file, "tokenizer.ggml.add_space_prefix");
  if (file.has("tokenizer.chat_template"))
    spec.chat_template = file.get_string("tokenizer.chat_template");
  return spec;
}

}  // namespace loom::models
