// Byte-level BPE on the real SmolLM2 vocabulary (read from the bundled GGUF) against Hugging
// Face tokenizers: golden ids from make_golden.py for every text of texts.json, with each
// pre-tokenizer family (SmolLM2's own, GPT-2, Llama 3, Qwen2) and special tokens both parsed
// and spelled out. Skips when models/ has no model (scripts/fetch_model.sh fetches it).
#include <gtest/gtest.h>

#include <thread>

#include "io/gguf.h"
#include "models/chat_template.h"
#include "models/test_data.h"
#include "models/tokenizer.h"
#include "models/tokenizer_gguf.h"
#include "models/utf8.h"

namespace loom::models {
namespace {

class SmolLM2Tokenizer : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = testing::smollm2_path();
    if (path_.empty()) GTEST_SKIP() << "no SmolLM2 model in models/ (run scripts/fetch_model.sh)";
  }
  TokenizerSpec spec() const { return tokenizer_spec_from_gguf(io::GgufFile::open(path_)); }
  std::string path_;
};

TEST_F(SmolLM2Tokenizer, MetadataIsRead) {
  TokenizerSpec s = spec();
  EXPECT_EQ(s.model, "gpt2");
  EXPECT_EQ(s.pre, "smollm");
  EXPECT_EQ(s.tokens.size(), 49152u);
  EXPECT_EQ(s.merges.size(), 48900u);
  EXPECT_EQ(s.bos_id, 1);
  EXPECT_EQ(s.eos_id, 2);
  EXPECT_FALSE(s.add_bos);
  Tokenizer tok(s);
  EXPECT_TRUE(tok.warnings().empty());
  EXPECT_TRUE(tok.is_end_of_generation(*tok.find_token("<|im_end|>")));
  EXPECT_EQ(ChatTemplate::detect(s.chat_template).format, ChatFormat::chatml);
}

TEST_F(SmolLM2Tokenizer, MatchesHuggingFaceTokenizers) {
  auto texts = testing::read_json("texts.json");
  auto golden = testing::read_json("golden.json");
  TokenizerSpec base = spec();
  for (const char* pre : {"smollm", "gpt2", "llama-bpe", "qwen2"}) {
    TokenizerSpec s = base;
    s.pre = pre;
    Tokenizer tok(s);
    auto parsed = golden["byte_level"][pre];
    auto spelled = golden["byte_level_text_specials"][pre];
    ASSERT_EQ(parsed.size(), texts.size());
    for (size_t i = 0; i < texts.size(); ++i) {
      std::string text = texts[i].get<std::string>();
      auto ids = tok.encode(text, {.add_special = true, .parse_special = true});
      EXPECT_EQ(ids, parsed[i].get<std::vector<int32_t>>()) << pre << " text " << i << ": " << text;
      EXPECT_EQ(tok.decode(ids), text) << pre << " text " << i;
      auto plain = tok.encode(text, {.add_special = true, .parse_special = false});
      EXPECT_EQ(plain, spelled[i].get<std::vector<int32_t>>()) << pre << " text " << i;
      EXPECT_EQ(tok.decode(plain), text) << pre << " text " << i;
    }
  }
}

TEST_F(SmolLM2Tokenizer, StreamingShowsOnlyWholeCharacters) {
  auto texts = testing::read_json("texts.json");
  auto golden = testing::read_json("golden.json")["byte_level"]["smollm"];
  Tokenizer tok(spec());
  int held_back = 0;  // tokens after which part of a character had to wait
  for (size_t i = 0; i < texts.size(); ++i) {
    StreamDecoder stream(tok);
    std::string shown;
    for (int32_t id : golden[i].get<std::vector<int32_t>>()) {
      std::string chunk = stream.push(id);
      EXPECT_EQ(sanitize_utf8(chunk), chunk) << "text " << i;  // valid UTF-8 on its own
      held_back += chunk.size() < tok.token_bytes(id).size();
      shown += chunk;
    }
    shown += stream.finish();
    EXPECT_EQ(shown, texts[i].get<std::string>());
  }
  EXPECT_GT(held_back, 10);  // the texts do split characters (CJK, emoji) across tokens
}

TEST_F(SmolLM2Tokenizer, ConcurrentEncodesShareTheWordCache) {
  // const: the threads only read the JSON.
  const auto texts = testing::read_json("texts.json");
  const auto golden = testing::read_json("golden.json")["byte_level"]["smollm"];
  Tokenizer tok(spec());
  std::vector<std::thread> threads;
  std::vector<int> mismatches(4, 0);
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int round = 0; round < 20; ++round)
        for (size_t i = 0; i < texts.size(); ++i) {
          size_t k = (i + size_t(t) * 7) % texts.size();  // threads visit texts in other orders
          auto ids = tok.encode(texts[k].get<std::string>(), {.parse_special = true});
          mismatches[size_t(t)] += ids != golden[k].get<std::vector<int32_t>>();
        }
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(mismatches, std::vector<int>(4, 0));
}

TEST_F(SmolLM2Tokenizer, ChatPromptTokens) {
  Tokenizer tok(spec());
  ChatTemplate chat = ChatTemplate::detect(tok.spec().chat_template);
  std::vector<ChatMessage> messages = {{"user", "Hi"}};
  auto ids = tok.encode(chat.apply(messages, true), {.parse_special = true});
  int32_t im_start = *tok.find_token("<|im_start|>"), im_end = *tok.find_token("<|im_end|>");
  EXPECT_EQ(ids.front(), im_start);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), im_start), 3);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), im_end), 2);
  EXPECT_EQ(
      tok.decode(ids, {.skip_special = true}),
      "system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face\nuser\nHi\n"
      "assistant\n");
}

}  // namespace
}  // namespace loom::models
