#include "models/chat_template.h"

#include <regex>

#include "loom/error.h"

namespace loom::models {

namespace {

std::string_view trim(std::string_view s) {
  const char* space = " \t\r\n";
  size_t a = s.find_first_not_of(space);
  if (a == std::string_view::npos) return {};
  size_t b = s.find_last_not_of(space);
  return s.substr(a, b - a + 1);
}

bool contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

// Undoes the escapes of a Jinja string literal ('\n' and friends).
std::string unescape(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '\\' || i + 1 == s.size()) {
      out += s[i];
      continue;
    }
    char c = s[++i];
    out += c == 'n' ? '\n' : c == 't' ? '\t' : c == 'r' ? '\r' : c;
  }
  return out;
}

// ChatML templates that add a system message when the first message is not one, such as
// SmolLM2's: {% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\n
// You are a helpful AI assistant named SmolLM, ...<|im_end|>\n' }}{% endif %}.
std::string chatml_default_system(std::string_view source) {
  if (!contains(source, "!= 'system'") && !contains(source, "!= \"system\"")) return {};
  // The newline may be written as a Jinja escape or stored as the character itself.
  static const std::regex literal(
      R"(<\|im_start\|>system(?:\\n|\n)((?:[^'"\\]|\\.)*?)<\|im_end\|>)");
  std::match_results<std::string_view::const_iterator> match;
  if (!std::regex_search(source.begin(), source.end(), match, literal)) return {};
  return unescape(source.substr(size_t(match.position(1)), size_t(match.length(1))));
}

}  // namespace

const char* chat_format_name(ChatFormat format) {
  switch (format) {
    case ChatFormat::chatml:
      return "chatml";
    case ChatFormat::llama2:
      return "llama2";
    case ChatFormat::llama3:
      return "llama3";
    case ChatFormat::mistral:
      return "mistral";
  }
  return "?";
}

ChatTemplate ChatTemplate::detect(std::string_view source) {
  ChatTemplate t;
  if (contains(source, "<|im_start|>")) {
    t.format = ChatFormat::chatml;
    t.default_system = chatml_default_system(source);
  } else if (contains(source, "<|start_header_id|>") && contains(source, "<|end_header_id|>")) {
    t.format = ChatFormat::llama3;
  } else if (contains(source, "[INST]")) {
    t.format = contains(source, "<<SYS>>") ? ChatFormat::llama2 : ChatFormat::mistral;
  } else {
    t.format = ChatFormat::chatml;
    t.warning = source.empty() ? "the model has no chat template; using ChatML"
                               : "the model's chat template is not one Loom recognises "
                                 "(ChatML, Llama-2, Llama-3, Mistral); using ChatML";
  }
  return t;
}

ChatTemplate ChatTemplate::named(std::string_view name) {
  ChatTemplate t;
  if (name == "chatml")
    t.format = ChatFormat::chatml;
  else if (name == "llama2")
    t.format = ChatFormat::llama2;
  else if (name == "llama3")
    t.format = ChatFormat::llama3;
  else if (name == "mistral")
    t.format = ChatFormat::mistral;
  else
    fail(ErrorKind::value, "unknown chat template '" + std::string(name) +
                               "' (choose chatml, llama2, llama3 or mistral)");
  return t;
}

std::string ChatTemplate::apply(std::span<const ChatMessage> messages,
                                bool add_generation_prompt) const {
  for (const auto& m : messages)
    if (m.role.empty()) fail(ErrorKind::value, "chat message has an empty role");
  std::string out;
  bool has_system = !messages.empty() && messages[0].role == "system";
  switch (format) {
    case ChatFormat::chatml:
      if (!has_system && !default_system.empty())
        out += "<|im_start|>system\n" + default_system + "<|im_end|>\n";
      for (const auto& m : messages)
        out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
      if (add_generation_prompt) out += "<|im_start|>assistant\n";
      break;
    case ChatFormat::llama3:
      for (const auto& m : messages)
        out += "<|start_header_id|>" + m.role + "<|end_header_id|>\n\n" +
               std::string(trim(m.content)) + "<|eot_id|>";
      if (add_generation_prompt) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
      break;
    case ChatFormat::llama2: {
      // Meta's format: the system prompt sits inside the first [INST]; each finished exchange
      // ends with </s> and the next one opens with <s>.
      bool in_turn = false;
      for (const auto& m : messages) {
        std::string content(trim(m.content));
        if (m.role == "assistant") {
          out += " " + content + " </s>";
          in_turn = false;
          continue;
        }
        if (!in_turn) {
          out += out.empty() ? "[INST] " : "<s>[INST] ";
          in_turn = true;
        }
        if (m.role == "system")
          out += "<<SYS>>\n" + content + "\n<</SYS>>\n\n";
        else
          out += content + " [/INST]";
      }
      break;
    }
    case ChatFormat::mistral: {
      // No system role: its text goes before the first user message, as Mistral's own
      // templates do.
      std::string system;
      for (const auto& m : messages) {
        std::string content(trim(m.content));
        if (m.role == "system") {
          system += content + "\n\n";
        } else if (m.role == "assistant") {
          out += content + "</s>";
        } else {
          out += "[INST] " + system + content + " [/INST]";
          system.clear();
        }
      }
      break;
    }
  }
  return out;
}

}  // namespace loom::models
