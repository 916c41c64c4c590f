// Tokenizers for the models Loom runs: GPT-2 style byte-level BPE (merge ranks, a pre-tokenizer
// regex chosen by name) and Llama-2 style SentencePiece BPE (piece scores, byte fallback, the ▁
// space marker). Both are built from a TokenizerSpec, a plain description that a GGUF file
// (tokenizer_gguf.h) or a test fills in, so the tokenizer does not depend on any file format.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace loom::models {

// Token kinds as GGUF numbers them (tokenizer.ggml.token_type).
enum class TokenType : int32_t {
  undefined = 0,
  normal = 1,
  unknown = 2,
  control = 3,       // special tokens such as <|im_start|>; matched in text only with parse_special
  user_defined = 4,  // added tokens; always matched in text, before pre-tokenizing
  unused = 5,
  byte = 6,  // SentencePiece byte fallback <0xNN>
};

struct TokenizerSpec {
  std::string model;  // "gpt2" (byte-level BPE) or "llama" (SentencePiece BPE)
  std::string pre;    // pre-tokenizer name for "gpt2": "smollm", "gpt2", "llama-bpe", "qwen2", ...
  std::vector<std::string> tokens;   // vocabulary as stored (byte-level text for "gpt2")
  std::vector<float> scores;         // one per token, or empty ("llama" merges by these)
  std::vector<int32_t> token_types;  // TokenType per token, or empty (all normal)
  std::vector<std::string> merges;   // "left right", best first ("gpt2")
  int32_t bos_id = -1, eos_id = -1, unk_id = -1, pad_id = -1, eot_id = -1;
  bool add_bos = false, add_eos = false;
  std::optional<bool> add_space_prefix;  // "llama": prepend a space; default true
  std::string chat_template;             // Jinja source from the model, or empty
};

struct EncodeOptions {
  bool add_special = true;     // BOS / EOS as the spec asks
  bool parse_special = false;  // match control tokens (<|im_start|>) written in the text
};

struct DecodeOptions {
  bool skip_special = false;  // drop control tokens (BOS, <|im_end|>) from the text
};

class Tokenizer {
 public:
  // Checks the spec (ids in range, merges naming known tokens) and builds the lookup tables.
  // Throws loom::Error on a bad spec.
  explicit Tokenizer(TokenizerSpec spec);
  ~Tokenizer();
  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;

  // Token ids of `text`. Thread-safe. Throws loom::Error when the text is not valid UTF-8.
  std::vector<int32_t> encode(std::string_view text, EncodeOptions options = {}) const;
  // Text of `ids`, with invalid UTF-8 (a sequence cut at the end) replaced by U+FFFD.
  std::string decode(std::span<const int32_t> ids, DecodeOptions options = {}) const;
  // The raw bytes one token stands for (may be part of a UTF-8 character). `at_start` drops
  // the space that a SentencePiece tokenizer added in front of the text.
  std::string token_bytes(int32_t id, bool at_start = false) const;

  int32_t vocab_size() const;
  const TokenizerSpec& spec() const;
  TokenType token_type(int32_t id) const;
  std::optional<int32_t> find_token(std::string_view text) const;  // by vocabulary text
  int32_t bos_id() const;
  int32_t eos_id() const;
  // EOS, EOT and the end-of-turn tokens of common chat formats (<|im_end|>, <|eot_id|>, ...).
  bool is_end_of_generation(int32_t id) const;
  // Things a user should hear about (an unknown pre-tokenizer name); empty when all is well.
  const std::vector<std::string>& warnings() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Turns a stream of generated tokens into text that is always valid UTF-8: bytes of a
// character split across tokens are held back until it is complete; invalid bytes become
// U+FFFD, and finish() replaces an unfinished sequence left at the end.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tokenizer, DecodeOptions options = {});
  std::string push(int32_t id);
  std::string finish();

 private:
  const Tokenizer* tokenizer_;
  DecodeOptions options_;
  std::string pending_;
  bool at_start_ = true;
};

}  // namespace loom::models
