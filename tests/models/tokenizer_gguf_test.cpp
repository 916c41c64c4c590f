// tokenizer_spec_from_gguf on small GGUF files written by the tests' own writer: the keys it
// reads, llama.cpp's defaults for absent ones, and errors for bad values.
#include "models/tokenizer_gguf.h"

#include <gtest/gtest.h>

#include "io/gguf_writer.h"
#include "loom/error.h"

namespace loom::models {
namespace {

using W = test::GgufWriter;

io::GgufFile llama_file(bool with_flags, W::Value token_types) {
  W w;
  w.add("tokenizer.ggml.model", W::string("llama"));
  w.add("tokenizer.ggml.tokens", W::strings({"<unk>", "<s>", "</s>", "\xE2\x96\x81hi", "<0x41>"}));
  w.add("tokenizer.ggml.scores",
        W::array(W::F32, {W::f32(0), W::f32(0), W::f32(0), W::f32(-1), W::f32(0)}));
  w.add("tokenizer.ggml.token_type", token_types);
  w.add("tokenizer.ggml.bos_token_id", W::u32(1));
  w.add("tokenizer.ggml.eos_token_id", W::u32(2));
  w.add("tokenizer.ggml.unknown_token_id", W::u32(0));
  if (with_flags) {
    w.add("tokenizer.ggml.add_bos_token", W::boolean(false));
    w.add("tokenizer.ggml.add_eos_token", W::boolean(true));
    w.add("tokenizer.ggml.add_space_prefix", W::boolean(false));
    w.add("tokenizer.chat_template", W::string("{{ '[INST] <<SYS>>' }}"));
  }
  return io::GgufFile::from_bytes(w.bytes(), "tokenizer test");
}

W::Value types(std::vector<int32_t> t) {
  std::vector<W::Value> values;
  for (int32_t v : t) values.push_back(W::i32(v));
  return W::array(W::I32, values);
}

TEST(TokenizerGguf, ReadsKeysAndDefaults) {
  TokenizerSpec s = tokenizer_spec_from_gguf(llama_file(false, types({2, 3, 3, 1, 6})));
  EXPECT_EQ(s.model, "llama");
  EXPECT_EQ(s.tokens.size(), 5u);
  EXPECT_EQ(s.scores[3], -1.f);
  EXPECT_EQ(s.token_types, (std::vector<int32_t>{2, 3, 3, 1, 6}));
  EXPECT_EQ(s.bos_id, 1);
  EXPECT_EQ(s.eos_id, 2);
  EXPECT_EQ(s.unk_id, 0);
  EXPECT_EQ(s.pad_id, -1);
  EXPECT_TRUE(s.add_bos);  // SentencePiece models start with BOS unless the file says not
  EXPECT_FALSE(s.add_eos);
  EXPECT_FALSE(s.add_space_prefix.has_value());
  Tokenizer tok(s);
  EXPECT_EQ(tok.token_type(4), TokenType::byte);
  EXPECT_EQ(tok.decode(std::vector<int32_t>{1, 3, 4}), "<s>hiA");

  s = tokenizer_spec_from_gguf(llama_file(true, types({2, 3, 3, 1, 6})));
  EXPECT_FALSE(s.add_bos);
  EXPECT_TRUE(s.add_eos);
  EXPECT_EQ(s.add_space_prefix, false);
  EXPECT_EQ(s.chat_template, "{{ '[INST] <<SYS>>' }}");
}

TEST(TokenizerGguf, BadValuesAreErrors) {
  EXPECT_THROW(tokenizer_spec_from_gguf(llama_file(false, types({2, 3, 3, 1, 9}))), Error);
  // Token types given as strings: the reader names the key.
  EXPECT_THROW(tokenizer_spec_from_gguf(llama_file(false, W::strings({"a"}))), Error);
  W w;
  w.add("tokenizer.ggml.model", W::string("gpt2"));
  EXPECT_THROW(tokenizer_spec_from_gguf(io::GgufFile::from_bytes(w.bytes())), Error);  // no tokens
  W negative;
  negative.add("tokenizer.ggml.model", W::string("llama"));
  negative.add("tokenizer.ggml.tokens", W::strings({"a"}));
  negative.add("tokenizer.ggml.bos_token_id", W::i32(-3));
  EXPECT_THROW(tokenizer_spec_from_gguf(io::GgufFile::from_bytes(negative.bytes())), Error);
}

}  // namespace
}  // namespace loom::models
