#include "models/generation.h"

#include <chrono>
#include <cstdlib>
#include <filesystem>

#include "io/gguf.h"
#include "models/tokenizer_gguf.h"

namespace loom::models {

namespace {

constexpr const char* kBundledModel = "SmolLM2-135M-Instruct.Q4_1.gguf";

Tokenizer load_tokenizer(const std::string& path) {
  return Tokenizer(tokenizer_spec_from_gguf(io::GgufFile::open(path)));
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

std::string default_model_path() {
  if (const char* env = std::getenv("LOOM_MODEL"); env && *env) return env;
  std::vector<std::filesystem::path> candidates{std::filesystem::path("models") / kBundledModel};
#ifdef LOOM_SOURCE_MODELS_DIR
  candidates.push_back(std::filesystem::path(LOOM_SOURCE_MODELS_DIR) / kBundledModel);
#endif
  for (const auto& c : candidates)
    if (std::filesystem::exists(c)) return c.string();
  fail(ErrorKind::io, std::string("no model given and the bundled ") + kBundledModel +
                          " is not in models/; run scripts/fetch_model.sh or pass --model PATH");
}

Generator::Generator(const std::string& model_path, const LlamaLoadOptions& options)
    : tokenizer_(load_tokenizer(model_path)),
      chat_(ChatTemplate::detect(tokenizer_.spec().chat_template)),
      model_(LlamaModel::load(model_path, options)) {
  if (model_.config().vocab < tokenizer_.vocab_size())
    fail(ErrorKind::io, model_path + ": the tokenizer has " +
                            std::to_string(tokenizer_.vocab_size()) + " tokens, the model only " +
                            std::to_string(model_.config().vocab));
}

std::vector<int32_t> Generator::chat_tokens(std::span<const ChatMessage> messages) const {
  EncodeOptions options;
  options.parse_special = true;
  return tokenizer_.encode(chat_.apply(messages, true), options);
}

std::vector<int32_t> Generator::text_tokens(const std::string& text) const {
  return tokenizer_.encode(text);
}

Generation::Generation(Generator& generator, std::span<const int32_t> prompt, int64_t max_tokens,
                       const SamplingOptions& sampling)
    : generator_(&generator),
      sampler_(sampling),
      text_(generator.tokenizer(), DecodeOptions{.skip_special = true}),
      max_tokens_(max_tokens),
      greedy_(sampling.temperature <= 0 && sampling.repetition_penalty == 1.f) {
  if (prompt.empty()) fail(ErrorKind::value, "generate: the prompt has no tokens");
  if (max_tokens < 0) fail(ErrorKind::value, "generate: max_tokens must be >= 0");
  LlamaModel& model = generator.model();
  model.reset();
  for (int32_t t : prompt) sampler_.accept(t);
  auto start = std::chrono::steady_clock::now();
  logits_ = model.forward(prompt, !greedy_);
  stats_.prompt_tokens = int64_t(prompt.size());
  stats_.prompt_seconds = seconds_since(start);
  done_ = max_tokens == 0;
}

std::optional<std::string> Generation::next() {
  LlamaModel& model = generator_->model();
  while (!done_) {
    auto start = std::chrono::steady_clock::now();
    // Greedy decoding takes the device's argmax; anything else samples the logits here.
    int32_t token = greedy_ ? model.greedy_token() : sampler_.sample(logits_);
    if (greedy_) sampler_.accept(token);
    std::string piece;
    if (generator_->tokenizer().is_end_of_generation(token)) {
      stats_.stopped_at_end = true;
      done_ = true;
    } else {
      ++stats_.generated_tokens;
      piece = text_.push(token);
      if (stats_.generated_tokens == max_tokens_ || model.position() >= model.context()) {
        done_ = true;
      } else {
        logits_ = model.forward(std::span(&token, 1), !greedy_);
      }
    }
    if (done_) piece += text_.finish();
    stats_.decode_seconds += seconds_since(start);
    if (!piece.empty()) return piece;
  }
  return std::nullopt;
}

GenerationStats Generator::generate(std::span<const int32_t> prompt, int64_t max_tokens,
                                    const SamplingOptions& sampling,
                                    const std::function<void(const std::string&)>& on_text) {
  Generation run(*this, prompt, max_tokens, sampling);
  while (auto piece = run.next()) on_text(*piece);
  return run.stats();
}

}  // namespace loom::models
