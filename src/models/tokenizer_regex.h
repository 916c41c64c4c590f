// Pre-tokenizers of byte-level BPE models: a sequence of regexes (PCRE2 with UTF and Unicode
// properties) chosen by the GGUF name tokenizer.ggml.pre. Each regex splits every piece the
// previous one left into its matches and the text between them (Hugging Face's "Isolated").
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace loom::models {

class PreTokenizer {
 public:
  // Compiles the regexes for `name`; an unknown name gets the default set and sets `warning`.
  static PreTokenizer for_name(const std::string& name, std::string* warning);
  // Compiles the given patterns (PCRE2 syntax); throws loom::Error on a bad pattern.
  explicit PreTokenizer(const std::vector<std::string>& patterns);
  ~PreTokenizer();
  PreTokenizer(PreTokenizer&&) noexcept;
  PreTokenizer& operator=(PreTokenizer&&) noexcept;

  // Pieces of `text` (valid UTF-8, checked by the caller), in order; they cover the text.
  std::vector<std::string_view> split(std::string_view text) const;
  // True for names whose Hugging Face tokenizer ignores merges for whole words in the vocab.
  bool ignore_merges() const { return ignore_merges_; }

 private:
  struct Regex;
  std::vector<std::unique_ptr<Regex>> regexes_;
  bool ignore_merges_ = false;
};

}  // namespace loom::models
