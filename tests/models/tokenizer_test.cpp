// Tokenizer core on small vocabularies made here: the priority-queue merges against naive
// quadratic references, special tokens, BOS/EOS, streaming decode, and bad specs.
#include "models/tokenizer.h"

#include <gtest/gtest.h>

#include <map>
#include <random>

#include "loom/error.h"
#include "models/tokenizer_regex.h"
#include "models/utf8.h"

namespace loom::models {
namespace {

// GPT-2's byte -> printable code point map, written out independently of the tokenizer.
std::string byte_text(unsigned char b) {
  int n = 0;
  for (int c = 0; c < 256; ++c) {
    bool printable = (c >= '!' && c <= '~') || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE);
    if (c == b) {
      std::string s;
      append_utf8(s, printable ? uint32_t(c) : uint32_t(256 + n));
      return s;
    }
    if (!printable) ++n;
  }
  return {};
}

std::string byte_level(std::string_view raw) {
  std::string s;
  for (char c : raw) s += byte_text(static_cast<unsigned char>(c));
  return s;
}

// A byte-level vocabulary: the 256 byte symbols, then random merges over a small alphabet.
struct ByteLevelFixture {
  TokenizerSpec spec;
  std::vector<std::pair<std::string, std::string>> merges;  // raw bytes
  ByteLevelFixture(uint32_t seed, int merge_count) {
    spec.model = "gpt2";
    spec.pre = "gpt2";
    for (int b = 0; b < 256; ++b) spec.tokens.push_back(byte_text(static_cast<unsigned char>(b)));
    std::vector<std::string> pieces = {"a", "b", "c", " "};
    std::mt19937 rng(seed);
    std::map<std::string, bool> known;
    for (auto& p : pieces) known[p] = true;
    while (int(merges.size()) < merge_count) {
      const std::string l = pieces[rng() % pieces.size()];
      const std::string r = pieces[rng() % pieces.size()];
      std::string joined = l + r;
      if (joined.size() > 6 || known.count(joined)) continue;
      known[joined] = true;
      merges.emplace_back(l, r);
      pieces.push_back(joined);
      spec.tokens.push_back(byte_level(joined));
      spec.merges.push_back(byte_level(l) + " " + byte_level(r));
    }
  }
};

// Naive BPE: repeatedly merge the leftmost occurrence of the best-ranked pair.
std::vector<std::string> naive_bpe(std::string_view word,
                                   const std::vector<std::pair<std::string, std::string>>& merges) {
  std::vector<std::string> parts;
  for (char c : word) parts.emplace_back(1, c);
  while (true) {
    size_t best_rank = merges.size(), best_at = 0;
    for (size_t i = 0; i + 1 < parts.size(); ++i)
      for (size_t r = 0; r < best_rank; ++r)
        if (merges[r].first == parts[i] && merges[r].second == parts[i + 1]) {
          best_rank = r;
          best_at = i;
          break;
        }
    if (best_rank == merges.size()) return parts;
    parts[best_at] += parts[best_at + 1];
    parts.erase(parts.begin() + ptrdiff_t(best_at) + 1);
  }
}

TEST(Tokenizer, ByteLevelMergesMatchNaiveBpe) {
  for (uint32_t seed = 1; seed <= 5; ++seed) {
    ByteLevelFixture f(seed, 40);
    Tokenizer tok(f.spec);
    std::mt19937 rng(seed * 77);
    for (int trial = 0; trial < 200; ++trial) {
      std::string word(1 + rng() % 12, 'a');
      for (char& c : word) c = "abc"[rng() % 3];
      std::vector<int32_t> expected;
      for (const auto& part : naive_bpe(word, f.merges))
        expected.push_back(*tok.find_token(byte_level(part)));
      // Twice: the second answer comes from the word cache.
      ASSERT_EQ(tok.encode(word), expected) << word;
      ASSERT_EQ(tok.encode(word), expected) << word;
      ASSERT_EQ(tok.decode(expected), word);
    }
  }
}

TEST(Tokenizer, MergeRankDecidesBetweenOverlappingPairs) {
  for (bool ab_first : {true, false}) {
    TokenizerSpec spec;
    spec.model = "gpt2";
    for (int b = 0; b < 256; ++b) spec.tokens.push_back(byte_text(static_cast<unsigned char>(b)));
    spec.tokens.push_back("ab");
    spec.tokens.push_back("bc");
    spec.merges =
        ab_first ? std::vector<std::string>{"a b", "b c"} : std::vector<std::string>{"b c", "a b"};
    spec.pre = "gpt2";
    Tokenizer tok(spec);
    std::vector<int32_t> expected =
        ab_first ? std::vector<int32_t>{256, 'c'} : std::vector<int32_t>{'a', 257};
    EXPECT_EQ(tok.encode("abc"), expected);
  }
}

TEST(Tokenizer, SpecialTokensAndBosEos) {
  ByteLevelFixture f(3, 10);
  TokenizerSpec spec = f.spec;
  int32_t bos = int32_t(spec.tokens.size());
  spec.tokens.push_back("<|start|>");
  spec.tokens.push_back("<|start|>x");  // longer control token sharing a prefix
  spec.tokens.push_back("<tool>");      // an added (user-defined) token
  spec.token_types.assign(spec.tokens.size(), int32_t(TokenType::normal));
  spec.token_types[size_t(bos)] = spec.token_types[size_t(bos) + 1] = int32_t(TokenType::control);
  spec.token_types[size_t(bos) + 2] = int32_t(TokenType::user_defined);
  spec.bos_id = bos;
  spec.eos_id = bos;
  spec.add_bos = true;
  Tokenizer tok(spec);

  auto plain = tok.encode("<|start|>", {.add_special = false});
  EXPECT_GT(plain.size(), 1u);  // parse_special off: spelled out
  EXPECT_EQ(tok.decode(plain), "<|start|>");
  EXPECT_EQ(tok.encode("a<|start|>xa<|start|>", {.add_special = false, .parse_special = true}),
            (std::vector<int32_t>{'a', bos + 1, 'a', bos}));
  // Added tokens are matched whether or not special parsing is on.
  EXPECT_EQ(tok.encode("<tool>", {.add_special = false}), std::vector<int32_t>{bos + 2});
  // BOS when the spec asks for it and add_special is on; EOS likewise.
  EXPECT_EQ(tok.encode("a"), (std::vector<int32_t>{bos, 'a'}));
  spec.add_bos = false;
  spec.add_eos = true;
  EXPECT_EQ(Tokenizer(spec).encode("a"), (std::vector<int32_t>{'a', bos}));
  EXPECT_EQ(tok.decode(std::vector<int32_t>{bos, 'a'}), "<|start|>a");
  EXPECT_EQ(tok.decode(std::vector<int32_t>{bos, 'a'}, {.skip_special = true}), "a");
  EXPECT_TRUE(tok.is_end_of_generation(bos));
  EXPECT_FALSE(tok.is_end_of_generation('a'));
}

TEST(Tokenizer, StreamDecoderHoldsBackSplitCharacters) {
  ByteLevelFixture f(4, 0);
  Tokenizer tok(f.spec);
  const std::string text = "é👨‍👩‍👧!";
  auto ids = tok.encode(text);
  ASSERT_EQ(ids.size(), text.size());  // no merges: one token per byte
  StreamDecoder stream(tok);
  std::string shown;
  for (int32_t id : ids) {
    std::string chunk = stream.push(id);
    EXPECT_EQ(sanitize_utf8(chunk), chunk);
    shown += chunk;
  }
  shown += stream.finish();
  EXPECT_EQ(shown, text);
  // A sequence cut short shows as U+FFFD at the end, never as raw bytes.
  StreamDecoder cut(tok);
  EXPECT_EQ(cut.push(0xF0), "");
  EXPECT_EQ(cut.push(0x9F), "");
  EXPECT_EQ(cut.finish(), kUtf8Replacement);
  EXPECT_EQ(tok.decode(std::vector<int32_t>{'a', 0xFF, 'b'}),
            "a" + std::string(kUtf8Replacement) + "b");
}

// A SentencePiece vocabulary: byte fallback pieces and scored pieces over a small alphabet.
struct SpmFixture {
  TokenizerSpec spec;
  SpmFixture(uint32_t seed) {
    spec.model = "llama";
    spec.tokens = {"<unk>", "<s>", "</s>"};
    spec.token_types = {2, 3, 3};
    spec.scores = {0, 0, 0};
    char name[8];
    for (int b = 0; b < 256; ++b) {
      std::snprintf(name, sizeof name, "<0x%02X>", b);
      spec.tokens.push_back(name);
      spec.token_types.push_back(int32_t(TokenType::byte));
      spec.scores.push_back(0);
    }
    std::mt19937 rng(seed);
    std::vector<std::string> pieces = {"\xE2\x96\x81", "a", "b", "é"};
    for (auto& p : pieces) add(p, -100.f);
    std::map<std::string, bool> known;
    while (pieces.size() < 40) {
      std::string joined = pieces[rng() % pieces.size()] + pieces[rng() % pieces.size()];
      if (joined.size() > 8 || known[joined]) continue;
      known[joined] = true;
      pieces.push_back(joined);
      add(joined, -float(rng() % 50));  // ties happen: leftmost must win
    }
    spec.unk_id = 0;
    spec.bos_id = 1;
    spec.eos_id = 2;
  }
  void add(const std::string& piece, float score) {
    spec.tokens.push_back(piece);
    spec.token_types.push_back(int32_t(TokenType::normal));
    spec.scores.push_back(score);
  }
};

// Naive SentencePiece BPE: merge the leftmost best-scoring adjacent pair that is a piece.
std::vector<int32_t> naive_spm(const std::string& text, const TokenizerSpec& spec) {
  std::map<std::string, int32_t> id;
  for (size_t i = 0; i < spec.tokens.size(); ++i) id[spec.tokens[i]] = int32_t(i);
  std::vector<std::string> parts;
  for (size_t i = 0; i < text.size();) {
    size_t n = size_t(utf8_check_prefix(std::string_view(text).substr(i)));
    parts.push_back(text.substr(i, n));
    i += n;
  }
  while (true) {
    int best = -1;
    float best_score = 0;
    for (size_t i = 0; i + 1 < parts.size(); ++i) {
      auto it = id.find(parts[i] + parts[i + 1]);
      if (it == id.end()) continue;
      float s = spec.scores[size_t(it->second)];
      if (best < 0 || s > best_score) {
        best = int(i);
        best_score = s;
      }
    }
    if (best < 0) break;
    parts[size_t(best)] += parts[size_t(best) + 1];
    parts.erase(parts.begin() + best + 1);
  }
  std::vector<int32_t> out;
  for (const auto& p : parts) {
    if (id.count(p)) {
      out.push_back(id[p]);
      continue;
    }
    for (unsigned char c : p) out.push_back(3 + c);
  }
  return out;
}

TEST(Tokenizer, SentencePieceMergesMatchNaiveReference) {
  for (uint32_t seed = 1; seed <= 5; ++seed) {
    SpmFixture f(seed);
    Tokenizer tok(f.spec);
    std::mt19937 rng(seed * 31);
    const char* alphabet[] = {"a", "b", "é", " ", "z", "中"};  // z and 中 need byte fallback
    for (int trial = 0; trial < 200; ++trial) {
      std::string text;
      for (size_t n = 1 + rng() % 10; n > 0; --n) text += alphabet[rng() % 6];
      std::string escaped = "\xE2\x96\x81";
      for (char c : text) escaped += c == ' ' ? std::string("\xE2\x96\x81") : std::string(1, c);
      ASSERT_EQ(tok.encode(text, {.add_special = false}), naive_spm(escaped, f.spec)) << text;
      ASSERT_EQ(tok.decode(tok.encode(text)), tok.decode(tok.encode(text, {.add_special = false})));
      ASSERT_EQ(tok.decode(tok.encode(text, {.add_special = false})), text);
    }
  }
}

TEST(Tokenizer, MalformedByteTokenDecodesAsItsText) {
  SpmFixture f(1);
  f.spec.tokens.push_back("<0xZZ>");
  f.spec.token_types.push_back(int32_t(TokenType::byte));
  f.spec.scores.push_back(0);
  Tokenizer tok(f.spec);
  EXPECT_EQ(tok.decode(std::vector<int32_t>{'a' + 3, tok.vocab_size() - 1}), "a<0xZZ>");
}

TEST(Tokenizer, SentencePieceWithoutSpacePrefix) {
  SpmFixture f(2);
  f.spec.add_space_prefix = false;
  Tokenizer tok(f.spec);
  auto ids = tok.encode("ab", {.add_special = false});
  EXPECT_EQ(ids, naive_spm("ab", f.spec));
  EXPECT_EQ(tok.decode(ids), "ab");
}

TEST(Tokenizer, PreTokenizerSplitsAndWarnsOnUnknownNames) {
  std::string warning;
  auto smollm = PreTokenizer::for_name("smollm", &warning);
  EXPECT_TRUE(warning.empty());
  auto pieces = smollm.split("I'm 42  ok\n");
  std::vector<std::string> got(pieces.begin(), pieces.end());
  EXPECT_EQ(got, (std::vector<std::string>{"I", "'m", " ", "4", "2", " ", " ok", "\n"}));
  PreTokenizer::for_name("no-such-model", &warning);
  EXPECT_NE(warning.find("no-such-model"), std::string::npos);
  TokenizerSpec spec = ByteLevelFixture(1, 0).spec;
  spec.pre = "no-such-model";
  EXPECT_EQ(Tokenizer(spec).warnings().size(), 1u);
  EXPECT_THROW(PreTokenizer({"("}), Error);
}

TEST(Tokenizer, LongRunsRoundTrip) {
  // Long runs stress the regex engine (its JIT stack) and one huge word the merge queue.
  for (const char* pre : {"gpt2", "smollm", "llama-bpe", "qwen2", "default"}) {
    TokenizerSpec spec = ByteLevelFixture(2, 30).spec;
    spec.pre = pre;
    Tokenizer tok(spec);
    for (std::string text : {std::string(200000, ' ') + "x", std::string(200000, 'a'),
                             std::string(100000, '\n') + "b c", std::string(50000, '7')})
      ASSERT_EQ(tok.decode(tok.encode(text)), text) << pre;
  }
}

TEST(Tokenizer, BadSpecsAndInputsAreErrors) {
  TokenizerSpec good = ByteLevelFixture(1, 3).spec;
  auto broken = [&](auto change) {
    TokenizerSpec s = good;
    change(s);
    EXPECT_THROW(Tokenizer{s}, Error);
  };
  broken([](TokenizerSpec& s) { s.model = "wordpiece"; });
  broken([](TokenizerSpec& s) { s.tokens.clear(); });
  broken([](TokenizerSpec& s) { s.merges.push_back("nospace"); });
  broken([](TokenizerSpec& s) { s.merges.push_back("zz qq"); });
  broken([](TokenizerSpec& s) { s.bos_id = int32_t(s.tokens.size()); });
  broken([](TokenizerSpec& s) { s.eos_id = -5; });
  broken([](TokenizerSpec& s) { s.scores = {1.f}; });
  broken([](TokenizerSpec& s) { s.token_types.assign(s.tokens.size(), 9); });
  Tokenizer tok(good);
  EXPECT_THROW(tok.encode("ok \xff"), Error);
  EXPECT_THROW(tok.decode(std::vector<int32_t>{-1}), Error);
  EXPECT_THROW(tok.decode(std::vector<int32_t>{tok.vocab_size()}), Error);
}

}  // namespace
}  // namespace loom::models
