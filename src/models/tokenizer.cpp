#include "models/tokenizer.h"

#include <algorithm>
#include <array>
#include <cstdio>
#include <mutex>
#include <queue>
#include <unordered_map>
#include <variant>

#include "loom/error.h"
#include "models/tokenizer_regex.h"
#include "models/utf8.h"

namespace loom::models {

namespace {

enum class Kind { byte_level_bpe, sentencepiece_bpe };

const std::string kSpaceMarker = "\xE2\x96\x81";  // ▁, SentencePiece's space

// GPT-2's reversible map from bytes to printable code points: printable Latin-1 bytes stand
// for themselves, the others for 256 + n, so that every token's text is printable.
struct ByteMap {
  std::array<std::string, 256> to_text;
  std::array<int, 512> to_byte;  // code point -> byte, or -1
  ByteMap() {
    to_byte.fill(-1);
    int extra = 0;
    for (int b = 0; b < 256; ++b) {
      bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
      uint32_t cp = printable ? uint32_t(b) : uint32_t(256 + extra++);
      append_utf8(to_text[size_t(b)], cp);
      to_byte[cp] = b;
    }
  }
};

const ByteMap& byte_map() {
  static const ByteMap map;
  return map;
}

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using TextToId = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

// A piece of input after special tokens were matched: plain text, or one token.
using Fragment = std::variant<std::string_view, int32_t>;

uint64_t pair_key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }

// The bytes a token stands for, from its vocabulary text.
std::string text_to_bytes(Kind kind, TokenType type, const std::string& text) {
  if (type == TokenType::control || type == TokenType::user_defined || type == TokenType::unknown)
    return text;  // stored as plain text in both vocabularies
  if (kind == Kind::byte_level_bpe) {
    std::string out;
    const auto& to_byte = byte_map().to_byte;
    for (size_t i = 0; i < text.size();) {
      int n = utf8_check_prefix(std::string_view(text).substr(i));
      if (n <= 0) {  // not byte-level text: pass the byte through
        out += text[i++];
        continue;
      }
      uint32_t cp = decode_utf8(std::string_view(text).substr(i), n);
      if (cp < to_byte.size() && to_byte[cp] >= 0)
        out += char(to_byte[cp]);
      else
        out.append(text, i, size_t(n));
      i += size_t(n);
    }
    return out;
  }
  if (type == TokenType::byte) {  // <0xNN>
    unsigned value = 0;
    if (text.size() == 6 && text.starts_with("<0x") && text[5] == '>' &&
        std::sscanf(text.c_str() + 3, "%2x", &value) == 1)
      return std::string(1, char(value));
  }
  std::string out;
  for (size_t i = 0; i < text.size();) {
    if (text.compare(i, kSpaceMarker.size(), kSpaceMarker) == 0) {
      out += ' ';
      i += kSpaceMarker.size();
    } else {
      out += text[i++];
    }
  }
  return out;
}

}  // namespace

struct Tokenizer::Impl {
  TokenizerSpec spec;
  Kind kind{};
  TextToId text_to_id;
  std::vector<TokenType> types;
  std::vector<std::string> warnings;
  // Special tokens matched in the text, grouped by first byte, longest first.
  std::array<std::vector<int32_t>, 256> specials_by_first_byte;
  std::vector<bool> end_of_generation;
  std::vector<std::string> bytes_of;  // what each token decodes to

  // Byte-level BPE.
  std::optional<PreTokenizer> pre;
  std::array<int32_t, 256> byte_token{};                             // token of each byte's symbol
  std::unordered_map<uint64_t, std::pair<int32_t, int32_t>> merges;  // pair -> rank, result
  mutable std::mutex cache_mutex;
  mutable std::unordered_map<std::string, std::vector<int32_t>, StringHash, std::equal_to<>>
      word_cache;

  // SentencePiece BPE.
  bool add_space_prefix = true;
  std::array<int32_t, 256> byte_fallback{};  // <0xNN> tokens

  void check_id(int32_t id, const char* what) const {
    if (id < -1 || id >= int32_t(spec.tokens.size()))
      fail(ErrorKind::value, std::string("tokenizer ") + what + " id " + std::to_string(id) +
                                 " is outside the vocabulary of " +
                                 std::to_string(spec.tokens.size()) + " tokens");
  }

  std::vector<Fragment> split_special(std::string_view text, bool parse_special) const;
  void encode_bpe_word(std::string_view word, std::vector<int32_t>& out) const;
  void bpe_merge(std::string_view word, std::vector<int32_t>& out) const;
  void encode_spm(std::string_view text, std::vector<int32_t>& out) const;
};

Tokenizer::Tokenizer(TokenizerSpec spec) : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.spec = std::move(spec);
  const auto& s = m.spec;
  if (s.model == "gpt2")
    m.kind = Kind::byte_level_bpe;
  else if (s.model == "llama")
    m.kind = Kind::sentencepiece_bpe;
  else
    fail(ErrorKind::unsupported, "tokenizer model '" + s.model +
                                     "' is not supported (Loom knows 'gpt2' byte-level BPE "
                                     "and 'llama' SentencePiece BPE)");
  const size_t n = s.tokens.size();
  if (n == 0) fail(ErrorKind::value, "tokenizer has an empty vocabulary");
  if (n > size_t(INT32_MAX)) fail(ErrorKind::value, "tokenizer vocabulary is too large");
  if (!s.scores.empty() && s.scores.size() != n)
    fail(ErrorKind::value, "tokenizer has " + std::to_string(s.scores.size()) + " scores for " +
                               std::to_string(n) + " tokens");
  if (!s.token_types.empty() && s.token_types.size() != n)
    fail(ErrorKind::value, "tokenizer has " + std::to_string(s.token_types.size()) +
                               " token types for " + std::to_string(n) + " tokens");
  m.check_id(s.bos_id, "BOS");
  m.check_id(s.eos_id, "EOS");
  m.check_id(s.unk_id, "unknown-token");
  m.check_id(s.pad_id, "padding");
  m.check_id(s.eot_id, "EOT");

  m.types.assign(n, TokenType::normal);
  for (size_t i = 0; i < s.token_types.size(); ++i) {
    int32_t t = s.token_types[i];
    if (t < 0 || t > 6)
      fail(ErrorKind::value,
           "token " + std::to_string(i) + " has unknown type " + std::to_string(t));
    m.types[i] = TokenType(t);
  }
  m.text_to_id.reserve(n);
  for (size_t i = 0; i < n; ++i) m.text_to_id[s.tokens[i]] = int32_t(i);  // the last one wins

  for (size_t i = 0; i < n; ++i) {
    TokenType t = m.types[i];
    bool special =
        t == TokenType::control || t == TokenType::user_defined || t == TokenType::unknown;
    if (special && !s.tokens[i].empty())
      m.specials_by_first_byte[static_cast<unsigned char>(s.tokens[i][0])].push_back(int32_t(i));
  }
  for (auto& group : m.specials_by_first_byte)
    std::stable_sort(group.begin(), group.end(), [&](int32_t a, int32_t b) {
      return s.tokens[size_t(a)].size() > s.tokens[size_t(b)].size();
    });

  m.bytes_of.reserve(n);
  for (size_t i = 0; i < n; ++i)
    m.bytes_of.push_back(text_to_bytes(m.kind, m.types[i], s.tokens[i]));

  m.end_of_generation.assign(n, false);
  for (int32_t id : {s.eos_id, s.eot_id})
    if (id >= 0) m.end_of_generation[size_t(id)] = true;
  for (const char* text : {"<|im_end|>", "<|eot_id|>", "<|end_of_text|>", "<|endoftext|>",
                           "<end_of_turn>", "<|end|>", "</s>"})
    if (auto it = m.text_to_id.find(std::string_view(text));
        it != m.text_to_id.end() && m.types[size_t(it->second)] == TokenType::control)
      m.end_of_generation[size_t(it->second)] = true;

  if (m.kind == Kind::byte_level_bpe) {
    std::string warning;
    m.pre = PreTokenizer::for_name(s.pre.empty() ? "default" : s.pre, &warning);
    if (!warning.empty()) m.warnings.push_back(warning);
    const auto& bytes = byte_map();
    for (int b = 0; b < 256; ++b) {
      auto it = m.text_to_id.find(bytes.to_text[size_t(b)]);
      m.byte_token[size_t(b)] = it == m.text_to_id.end() ? s.unk_id : it->second;
    }
    m.merges.reserve(s.merges.size());
    for (size_t rank = 0; rank < s.merges.size(); ++rank) {
      const std::string& merge = s.merges[rank];
      // The separator is the first space after the first character ("  a" never occurs in
      // byte-level text, but llama.cpp reads them this way too).
      size_t space = merge.find(' ', 1);
      auto bad = [&](const std::string& why) {
        fail(ErrorKind::value,
             "tokenizer merge " + std::to_string(rank) + " '" + merge + "' " + why);
      };
      if (space == std::string::npos) bad("has no space between its two parts");
      std::string_view left(merge.data(), space),
          right(merge.data() + space + 1, merge.size() - space - 1);
      auto l = m.text_to_id.find(left), r = m.text_to_id.find(right);
      auto joined = m.text_to_id.find(std::string(left) + std::string(right));
      if (l == m.text_to_id.end() || r == m.text_to_id.end() || joined == m.text_to_id.end())
        bad("names a token that is not in the vocabulary");
      // An earlier (better) merge of the same pair wins.
      m.merges.try_emplace(pair_key(l->second, r->second), int32_t(rank), joined->second);
    }
  } else {
    m.add_space_prefix = s.add_space_prefix.value_or(true);
    char name[8];
    for (int b = 0; b < 256; ++b) {
      std::snprintf(name, sizeof name, "<0x%02X>", b);
      auto it = m.text_to_id.find(std::string_view(name));
      m.byte_fallback[size_t(b)] = it == m.text_to_id.end() ? s.unk_id : it->second;
    }
  }
}

Tokenizer::~Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;

std::vector<Fragment> Tokenizer::Impl::split_special(std::string_view text,
                                                     bool parse_special) const {
  std::vector<Fragment> out;
  size_t plain_start = 0;
  size_t i = 0;
  while (i < text.size()) {
    int32_t found = -1;
    for (int32_t id : specials_by_first_byte[static_cast<unsigned char>(text[i])]) {
      // Control and unknown tokens only when asked; added (user-defined) tokens always.
      if (!parse_special && types[size_t(id)] != TokenType::user_defined) continue;
      const std::string& t = spec.tokens[size_t(id)];
      if (text.compare(i, t.size(), t) == 0) {
        found = id;  // the longest, as the group is sorted by length
        break;
      }
    }
    if (found < 0) {
      ++i;
      continue;
    }
    if (i > plain_start) out.emplace_back(text.substr(plain_start, i - plain_start));
    out.emplace_back(found);
    i += spec.tokens[size_t(found)].size();
    plain_start = i;
  }
  if (plain_start < text.size()) out.emplace_back(text.substr(plain_start));
  return out;
}

// Byte-level BPE of one pre-tokenized word: start from one symbol per byte and apply the
// best-ranked merge among adjacent pairs until none applies (a priority queue keyed by rank,
// then position, with stale entries skipped when popped).
void Tokenizer::Impl::bpe_merge(std::string_view word, std::vector<int32_t>& out) const {
  struct Symbol {
    int32_t id;
    int prev, next;
  };
  std::vector<Symbol> symbols;
  symbols.reserve(word.size());
  for (size_t i = 0; i < word.size(); ++i) {
    int32_t id = byte_token[static_cast<unsigned char>(word[i])];
    if (id < 0) continue;  // a byte the vocabulary cannot spell, and no unknown token: dropped
    int index = int(symbols.size());
    symbols.push_back({id, index - 1, index + 1});
  }
  if (symbols.empty()) return;
  symbols.back().next = -1;

  struct Candidate {
    int32_t rank;
    int left;
    int32_t left_id, right_id;
    bool operator>(const Candidate& o) const {
      return rank != o.rank ? rank > o.rank : left > o.left;
    }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> queue;
  auto consider = [&](int left) {
    if (left < 0) return;
    int right = symbols[size_t(left)].next;
    if (right < 0) return;
    auto it = merges.find(pair_key(symbols[size_t(left)].id, symbols[size_t(right)].id));
    if (it != merges.end())
      queue.push({it->second.first, left, symbols[size_t(left)].id, symbols[size_t(right)].id});
  };
  for (int i = 0; i + 1 < int(symbols.size()); ++i) consider(i);
  while (!queue.empty()) {
    Candidate c = queue.top();
    queue.pop();
    Symbol& left = symbols[size_t(c.left)];
    if (left.id != c.left_id || left.next < 0) continue;  // stale: the left symbol changed
    Symbol& right = symbols[size_t(left.next)];
    if (right.id != c.right_id) continue;
    left.id = merges.at(pair_key(c.left_id, c.right_id)).second;
    left.next = right.next;
    if (right.next >= 0) symbols[size_t(right.next)].prev = c.left;
    right.id = -1;  // removed
    consider(left.prev);
    consider(c.left);
  }
  for (int i = 0; i >= 0; i = symbols[size_t(i)].next) out.push_back(symbols[size_t(i)].id);
}

void Tokenizer::Impl::encode_bpe_word(std::string_view word, std::vector<int32_t>& out) const {
  {
    std::lock_guard lock(cache_mutex);
    if (auto it = word_cache.find(word); it != word_cache.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> ids;
  if (pre->ignore_merges()) {
    std::string text;
    for (char c : word) text += byte_map().to_text[static_cast<unsigned char>(c)];
    if (auto it = text_to_id.find(text); it != text_to_id.end()) ids.push_back(it->second);
  }
  if (ids.empty()) bpe_merge(word, ids);
  out.insert(out.end(), ids.begin(), ids.end());
  std::lock_guard lock(cache_mutex);
  if (word_cache.size() >= 65536) word_cache.clear();  // bounded; words repeat within a text
  word_cache.emplace(std::string(word), std::move(ids));
}

// SentencePiece BPE (as sentencepiece's bpe_model and llama.cpp do it): start from one symbol
// per character, repeatedly merge the adjacent pair whose joined text is the vocabulary piece
// with the highest score (leftmost on ties).
void Tokenizer::Impl::encode_spm(std::string_view text, std::vector<int32_t>& out) const {
  struct Symbol {
    size_t start, size;
    int prev, next;
  };
  std::vector<Symbol> symbols;
  for (size_t i = 0; i < text.size();) {
    int n = utf8_check_prefix(text.substr(i));
    size_t len = n > 0 ? size_t(n) : 1;
    int index = int(symbols.size());
    symbols.push_back({i, len, index - 1, index + 1});
    i += len;
  }
  if (symbols.empty()) return;
  symbols.back().next = -1;

  struct Candidate {
    float score;
    int left, right;
    size_t size;
    bool operator<(const Candidate& o) const {  // max-heap: higher score, then leftmost
      return score != o.score ? score < o.score : left > o.left;
    }
  };
  std::priority_queue<Candidate> queue;
  auto consider = [&](int left, int right) {
    if (left < 0 || right < 0) return;
    std::string_view joined = text.substr(symbols[size_t(left)].start,
                                          symbols[size_t(left)].size + symbols[size_t(right)].size);
    auto it = text_to_id.find(joined);
    if (it == text_to_id.end()) return;
    float score = spec.scores.empty() ? 0.f : spec.scores[size_t(it->second)];
    queue.push({score, left, right, joined.size()});
  };
  for (int i = 1; i < int(symbols.size()); ++i) consider(i - 1, i);
  while (!queue.empty()) {
    Candidate c = queue.top();
    queue.pop();
    Symbol& left = symbols[size_t(c.left)];
    Symbol& right = symbols[size_t(c.right)];
    // Stale when either side was merged away or grew since the pair was queued.
    if (left.size == 0 || right.size == 0 || left.size + right.size != c.size) continue;
    left.size += right.size;
    right.size = 0;
    left.next = right.next;
    if (right.next >= 0) symbols[size_t(right.next)].prev = c.left;
    consider(left.prev, c.left);
    consider(c.left, left.next);
  }

  // Every merged symbol is a vocabulary piece; a single character may not be, and then its
  // bytes fall back to <0xNN> tokens (or the unknown token).
  for (int i = 0; i >= 0; i = symbols[size_t(i)].next) {
    std::string_view piece = text.substr(symbols[size_t(i)].start, symbols[size_t(i)].size);
    if (auto it = text_to_id.find(piece); it != text_to_id.end()) {
      out.push_back(it->second);
      continue;
    }
    for (char c : piece) {
      int32_t id = byte_fallback[static_cast<unsigned char>(c)];
      if (id >= 0) out.push_back(id);
    }
  }
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, EncodeOptions options) const {
  const Impl& m = *impl_;
  for (size_t i = 0; i < text.size();) {
    int n = utf8_check_prefix(text.substr(i));
    if (n <= 0)
      fail(ErrorKind::value, "text to tokenize is not valid UTF-8 at byte " + std::to_string(i));
    i += size_t(n);
  }
  std::vector<int32_t> out;
  if (options.add_special && m.spec.add_bos && m.spec.bos_id >= 0) out.push_back(m.spec.bos_id);
  bool after_special = true;  // SentencePiece adds its space at the start and after specials
  std::string escaped;
  for (const Fragment& fragment : m.split_special(text, options.parse_special)) {
    if (const int32_t* id = std::get_if<int32_t>(&fragment)) {
      out.push_back(*id);
      after_special = true;
      continue;
    }
    std::string_view plain = std::get<std::string_view>(fragment);
    if (m.kind == Kind::byte_level_bpe) {
      for (std::string_view word : m.pre->split(plain)) m.encode_bpe_word(word, out);
    } else {
      escaped.clear();
      if (m.add_space_prefix && after_special) escaped += kSpaceMarker;
      for (char c : plain) {
        if (c == ' ')
          escaped += kSpaceMarker;
        else
          escaped += c;
      }
      m.encode_spm(escaped, out);
    }
    after_special = false;
  }
  if (options.add_special && m.spec.add_eos && m.spec.eos_id >= 0) out.push_back(m.spec.eos_id);
  return out;
}

std::string Tokenizer::token_bytes(int32_t id, bool at_start) const {
  const Impl& m = *impl_;
  if (id < 0 || id >= vocab_size())
    fail(ErrorKind::value, "token id " + std::to_string(id) + " is outside the vocabulary of " +
                               std::to_string(vocab_size()) + " tokens");
  const std::string& bytes = m.bytes_of[size_t(id)];
  TokenType type = m.types[size_t(id)];
  bool plain_text =
      type == TokenType::control || type == TokenType::user_defined || type == TokenType::unknown;
  if (at_start && m.kind == Kind::sentencepiece_bpe && m.add_space_prefix && !plain_text &&
      !bytes.empty() && bytes[0] == ' ')
    return bytes.substr(1);
  return bytes;
}

std::string Tokenizer::decode(std::span<const int32_t> ids, DecodeOptions options) const {
  StreamDecoder stream(*this, options);
  std::string out;
  for (int32_t id : ids) out += stream.push(id);
  out += stream.finish();
  return out;
}

int32_t Tokenizer::vocab_size() const { return int32_t(impl_->spec.tokens.size()); }
const TokenizerSpec& Tokenizer::spec() const { return impl_->spec; }
TokenType Tokenizer::token_type(int32_t id) const {
  if (id < 0 || id >= vocab_size())
    fail(ErrorKind::value, "token id " + std::to_string(id) + " is outside the vocabulary");
  return impl_->types[size_t(id)];
}
std::optional<int32_t> Tokenizer::find_token(std::string_view text) const {
  auto it = impl_->text_to_id.find(text);
  if (it == impl_->text_to_id.end()) return std::nullopt;
  return it->second;
}
int32_t Tokenizer::bos_id() const { return impl_->spec.bos_id; }
int32_t Tokenizer::eos_id() const { return impl_->spec.eos_id; }
bool Tokenizer::is_end_of_generation(int32_t id) const {
  return id >= 0 && id < vocab_size() && impl_->end_of_generation[size_t(id)];
}
const std::vector<std::string>& Tokenizer::warnings() const { return impl_->warnings; }

StreamDecoder::StreamDecoder(const Tokenizer& tokenizer, DecodeOptions options)
    : tokenizer_(&tokenizer), options_(options) {}

std::string StreamDecoder::push(int32_t id) {
  TokenType type = tokenizer_->token_type(id);
  if (type == TokenType::control) {
    if (options_.skip_special) return {};
    // A control token is whole text; what was held back before it cannot be completed.
    std::string out = sanitize_utf8(pending_);
    pending_.clear();
    return out + tokenizer_->token_bytes(id);
  }
  pending_ += tokenizer_->token_bytes(id, at_start_);
  at_start_ = false;
  return take_complete_utf8(pending_);
}

std::string StreamDecoder::finish() {
  std::string out = sanitize_utf8(pending_);
  pending_.clear();
  return out;
}

}  // namespace loom::models
