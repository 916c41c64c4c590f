// Chat templates: recognised from the Jinja sources, and rendered the way Jinja2 renders
// them (tests/data/tokenizer/chat_golden.json, made by make_golden.py).
#include "models/chat_template.h"

#include <gtest/gtest.h>

#include "loom/error.h"
#include "models/test_data.h"

namespace loom::models {
namespace {

TEST(ChatTemplate, RendersLikeJinjaForEachRecognisedTemplate) {
  auto golden = testing::read_json("chat_golden.json");
  ASSERT_EQ(golden.size(), 4u);
  for (const auto& c : golden) {
    ChatTemplate t = ChatTemplate::detect(c["template"].get<std::string>());
    EXPECT_EQ(chat_format_name(t.format), c["format"].get<std::string>());
    EXPECT_TRUE(t.warning.empty());
    ASSERT_FALSE(c["renders"].empty());
    for (const auto& r : c["renders"]) {
      std::vector<ChatMessage> messages;
      for (const auto& m : r["messages"])
        messages.push_back({m["role"].get<std::string>(), m["content"].get<std::string>()});
      // Loom leaves the first BOS to the tokenizer; Jinja writes it as text.
      std::string rendered = r["bos_token"].get<std::string>() +
                             t.apply(messages, r["add_generation_prompt"].get<bool>());
      EXPECT_EQ(rendered, r["text"].get<std::string>()) << c["format"];
    }
  }
}

TEST(ChatTemplate, SmolLM2DefaultSystemMessage) {
  auto golden = testing::read_json("chat_golden.json");
  ChatTemplate t = ChatTemplate::detect(golden[0]["template"].get<std::string>());
  EXPECT_EQ(t.default_system,
            "You are a helpful AI assistant named SmolLM, trained by Hugging Face");
  std::vector<ChatMessage> chat = {{"user", "Hi"}};
  EXPECT_EQ(t.apply(chat, true),
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
            "Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
}

TEST(ChatTemplate, UnknownTemplatesFallBackToChatMLWithAWarning) {
  for (const char* source : {"", "{{ messages[0]['content'] }}<|user|>"}) {
    ChatTemplate t = ChatTemplate::detect(source);
    EXPECT_EQ(t.format, ChatFormat::chatml);
    EXPECT_FALSE(t.warning.empty());
    EXPECT_TRUE(t.default_system.empty());
  }
  EXPECT_EQ(ChatTemplate::named("llama3").format, ChatFormat::llama3);
  EXPECT_THROW(ChatTemplate::named("jinja"), Error);
  std::vector<ChatMessage> bad = {{"", "x"}};
  EXPECT_THROW(ChatTemplate::named("chatml").apply(bad, false), Error);
}

}  // namespace
}  // namespace loom::models
