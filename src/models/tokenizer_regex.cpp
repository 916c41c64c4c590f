#define PCRE2_CODE_UNIT_WIDTH 8
#include "models/tokenizer_regex.h"

#include <pcre2.h>

#include <array>

#include "loom/error.h"

namespace loom::models {

namespace {

// The patterns as the models' Hugging Face tokenizer.json files (and llama.cpp) define them.
constexpr const char* kGpt2 =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
constexpr const char* kLlama3 =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kQwen2 =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// llama.cpp's choice for BPE models that name no known pre-tokenizer.
const std::vector<std::string> kDefault = {
    R"([\p{P}\$\+<=>\^~\|]+)",
    kGpt2,
    R"(\p{N}+)",
    R"([0-9][0-9][0-9])",
};

struct Family {
  std::vector<const char*> names;
  std::vector<std::string> patterns;
  bool ignore_merges;
};

const std::vector<Family>& families() {
  static const std::vector<Family> table = {
      {{"gpt2", "gpt-2", "mpt", "olmo", "jais"}, {kGpt2}, false},
      // SmolLM and StarCoder split every digit first (a Digits pre-tokenizer), then GPT-2's.
      {{"smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva"},
       {R"(\p{N})", kGpt2},
       false},
      {{"llama-bpe", "llama3", "llama-v3", "dbrx", "smaug-bpe", "falcon3"}, {kLlama3}, true},
      {{"qwen2", "deepseek-r1-qwen", "stablelm2", "megrez", "hunyuan"}, {kQwen2}, false},
      {{"default"}, kDefault, false},
  };
  return table;
}

}  // namespace

struct PreTokenizer::Regex {
  pcre2_code* code = nullptr;
  bool jit = false;
  ~Regex() { pcre2_code_free(code); }
};

PreTokenizer PreTokenizer::for_name(const std::string& name, std::string* warning) {
  for (const auto& family : families())
    for (const char* n : family.names)
      if (name == n) {
        PreTokenizer p(family.patterns);
        p.ignore_merges_ = family.ignore_merges;
        return p;
      }
  if (warning)
    *warning = "unknown pre-tokenizer '" + name +
               "' (tokenizer.ggml.pre); using the default regexes, so tokens may differ from "
               "the model's own tokenizer";
  return PreTokenizer(kDefault);
}

PreTokenizer::PreTokenizer(const std::vector<std::string>& patterns) {
  for (const auto& pattern : patterns) {
    auto regex = std::make_unique<Regex>();
    int error = 0;
    PCRE2_SIZE offset = 0;
    // UTF: code points, not bytes; UCP: \s, \d and friends use Unicode properties, as the
    // regex engines of Hugging Face tokenizers and Python do.
    regex->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                PCRE2_UTF | PCRE2_UCP, &error, &offset, nullptr);
    if (!regex->code) {
      std::array<PCRE2_UCHAR, 256> message{};
      pcre2_get_error_message(error, message.data(), message.size());
      fail(ErrorKind::value, "pre-tokenizer regex '" + pattern + "' does not compile at offset " +
                                 std::to_string(offset) + ": " +
                                 reinterpret_cast<const char*>(message.data()));
    }
    regex->jit = pcre2_jit_compile(regex->code, PCRE2_JIT_COMPLETE) == 0;
    regexes_.push_back(std::move(regex));
  }
}

PreTokenizer::~PreTokenizer() = default;
PreTokenizer::PreTokenizer(PreTokenizer&&) noexcept = default;
PreTokenizer& PreTokenizer::operator=(PreTokenizer&&) noexcept = default;

std::vector<std::string_view> PreTokenizer::split(std::string_view text) const {
  std::vector<std::string_view> pieces{text};
  for (const auto& regex : regexes_) {
    std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> match(
        pcre2_match_data_create_from_pattern(regex->code, nullptr), pcre2_match_data_free);
    std::vector<std::string_view> next;
    for (std::string_view piece : pieces) {
      auto subject = reinterpret_cast<PCRE2_SPTR>(piece.data());
      size_t at = 0;  // where the next unmatched gap starts
      size_t from = 0;
      while (from < piece.size()) {
        // The caller checked the UTF-8 once for the whole text; the pieces are whole
        // characters, so PCRE2 need not check again.
        int rc = pcre2_match(regex->code, subject, piece.size(), from, PCRE2_NO_UTF_CHECK,
                             match.get(), nullptr);
        if (rc == PCRE2_ERROR_JIT_STACKLIMIT)  // a long run the JIT stack cannot hold
          rc = pcre2_match(regex->code, subject, piece.size(), from,
                           PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, match.get(), nullptr);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
          std::array<PCRE2_UCHAR, 256> message{};
          pcre2_get_error_message(rc, message.data(), message.size());
          fail(ErrorKind::internal, std::string("pre-tokenizer regex failed: ") +
                                        reinterpret_cast<const char*>(message.data()));
        }
        const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(match.get());
        size_t start = ovector[0], end = ovector[1];
        if (end == start) {  // an empty match splits nothing; step over one character
          from = start + 1;
          while (from < piece.size() && (static_cast<unsigned char>(piece[from]) & 0xC0) == 0x80)
            ++from;
          continue;
        }
        if (start > at) next.push_back(piece.substr(at, start - at));
        next.push_back(piece.substr(start, end - start));
        at = from = end;
      }
      if (at < piece.size()) next.push_back(piece.substr(at));
    }
    pieces = std::move(next);
  }
  return pieces;
}

}  // namespace loom::models
