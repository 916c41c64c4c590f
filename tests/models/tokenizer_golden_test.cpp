// SentencePiece BPE against sentencepiece itself: a small model trained by make_golden.py
// (spm_vocab.json) and the ids sentencepiece gave for each text of texts.json, including
// scripts the model never saw (byte fallback).
#include <gtest/gtest.h>

#include "models/test_data.h"
#include "models/tokenizer.h"

namespace loom::models {
namespace {

Tokenizer golden_spm_tokenizer() {
  auto vocab = testing::read_json("spm_vocab.json");
  TokenizerSpec spec;
  spec.model = "llama";
  for (const auto& p : vocab["pieces"]) {
    spec.tokens.push_back(p["piece"].get<std::string>());
    spec.scores.push_back(p["score"].get<float>());
    spec.token_types.push_back(p["type"].get<int32_t>());
  }
  spec.bos_id = vocab["bos_id"].get<int32_t>();
  spec.eos_id = vocab["eos_id"].get<int32_t>();
  spec.unk_id = vocab["unk_id"].get<int32_t>();
  spec.add_bos = true;
  return Tokenizer(std::move(spec));
}

TEST(TokenizerGolden, SentencePieceMatchesSentencepiece) {
  Tokenizer tok = golden_spm_tokenizer();
  auto texts = testing::read_json("texts.json");
  auto golden = testing::read_json("golden.json")["sentencepiece"];
  ASSERT_EQ(texts.size(), golden.size());
  int byte_fallbacks = 0;
  for (size_t i = 0; i < texts.size(); ++i) {
    std::string text = texts[i].get<std::string>();
    auto expected = golden[i].get<std::vector<int32_t>>();
    auto ids = tok.encode(text, {.add_special = false});
    EXPECT_EQ(ids, expected) << "text " << i << ": " << text;
    for (int32_t id : ids) byte_fallbacks += tok.token_type(id) == TokenType::byte;
    EXPECT_EQ(tok.decode(ids), text) << "text " << i;
    // With add_special the spec's BOS comes first, and decoding can skip it.
    auto with_bos = tok.encode(text);
    ASSERT_FALSE(with_bos.empty());
    EXPECT_EQ(with_bos[0], tok.bos_id());
    EXPECT_EQ(tok.decode(with_bos, {.skip_special = true}), text);
  }
  EXPECT_GT(byte_fallbacks, 100);  // the golden texts do reach the byte fallback path
}

}  // namespace
}  // namespace loom::models
