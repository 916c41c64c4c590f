// Chat prompts for instruct models. Loom has no Jinja engine: it recognises the common
// templates a model's metadata carries (tokenizer.chat_template) and writes them natively.
// An unknown template falls back to ChatML and says so in `warning`.
#pragma once

#include <span>
#include <string>
#include <string_view>

namespace loom::models {

struct ChatMessage {
  std::string role;  // "system", "user" or "assistant"
  std::string content;
};

enum class ChatFormat {
  chatml,   // <|im_start|>role\ncontent<|im_end|>\n (SmolLM2, Qwen2, ...)
  llama2,   // [INST] <<SYS>>\nsystem\n<</SYS>>\n\nuser [/INST] assistant </s><s>[INST] ...
  llama3,   // <|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|>
  mistral,  // [INST] user [/INST]assistant</s>[INST] ...  (system goes before the first user)
};

const char* chat_format_name(ChatFormat format);

struct ChatTemplate {
  ChatFormat format = ChatFormat::chatml;
  // A system message the template adds when the conversation has none (SmolLM2 has one).
  std::string default_system;
  // Set when the template was not recognised (or missing) and ChatML stands in for it.
  std::string warning;

  // Recognises `source`, the Jinja text from the model.
  static ChatTemplate detect(std::string_view source);
  // Recognises a name ("chatml", "llama2", "llama3", "mistral"); throws loom::Error otherwise.
  static ChatTemplate named(std::string_view name);

  // The prompt text; encode it with parse_special so the markers become their tokens. The
  // BOS token is left to the tokenizer (add_bos), except between turns where a format repeats
  // it. With `add_generation_prompt` it ends where the assistant's reply begins.
  std::string apply(std::span<const ChatMessage> messages, bool add_generation_prompt) const;
};

}  // namespace loom::models
