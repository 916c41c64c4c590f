// Text generation with a Llama-family model: the tokenizer and chat template from the same
// GGUF file, prefill of the prompt, then one decode step per token with the chosen sampling,
// streaming text that is always valid UTF-8. Used by `loom generate` and the Python package.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "models/chat_template.h"
#include "models/llama_model.h"
#include "models/sampling.h"
#include "models/tokenizer.h"

namespace loom::models {

// The model file `loom generate` and the tests use when none is named: $LOOM_MODEL, else the
// bundled SmolLM2 in models/ (beside the source tree, or the current directory).
std::string default_model_path();

struct GenerationStats {
  int64_t prompt_tokens = 0;
  int64_t generated_tokens = 0;
  double prompt_seconds = 0;
  double decode_seconds = 0;
  bool stopped_at_end = false;  // the model ended its turn (EOS, <|im_end|>, ...)
};

class Generator;

// One generation, pulled a piece of text at a time (what the Python iterator wraps): the
// constructor runs the prompt; each next() decodes tokens until some text can be shown.
class Generation {
 public:
  Generation(Generator& generator, std::span<const int32_t> prompt, int64_t max_tokens,
             const SamplingOptions& sampling);
  // The next piece of text (valid UTF-8), or nothing once the model stopped or the budget or
  // the context ran out.
  std::optional<std::string> next();
  const GenerationStats& stats() const { return stats_; }

 private:
  Generator* generator_;
  Sampler sampler_;
  StreamDecoder text_;
  std::span<const float> logits_;
  int64_t max_tokens_;
  bool greedy_;
  bool done_ = false;
  GenerationStats stats_;
};

class Generator {
 public:
  Generator(const std::string& model_path, const LlamaLoadOptions& options);

  const Tokenizer& tokenizer() const { return tokenizer_; }
  LlamaModel& model() { return model_; }
  const ChatTemplate& chat_template() const { return chat_; }

  // The prompt of a conversation, as tokens (chat template applied, special tokens parsed).
  std::vector<int32_t> chat_tokens(std::span<const ChatMessage> messages) const;
  // The tokens of plain text (BOS as the model asks).
  std::vector<int32_t> text_tokens(const std::string& text) const;

  // Runs the prompt from an empty cache and generates up to `max_tokens`, calling `on_text`
  // with each piece of text as it is decoded. Returns what happened. (A Generation does the
  // same a piece at a time.)
  GenerationStats generate(std::span<const int32_t> prompt, int64_t max_tokens,
                           const SamplingOptions& sampling,
                           const std::function<void(const std::string&)>& on_text);

 private:
  Tokenizer tokenizer_;
  ChatTemplate chat_;
  LlamaModel model_;
};

}  // namespace loom::models
