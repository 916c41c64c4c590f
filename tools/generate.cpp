// `loom generate`: runs a language model on a prompt (or an interactive chat) and streams the
// text as it comes; prompt and decode speed at the end.
#include <fmt/format.h>

#include <cstdio>
#include <iostream>
#include <random>

#include "commands.h"
#include "flags.h"
#include "model_options.h"
#include "models/generation.h"

namespace loom::tools {

namespace {

struct GenerateFlags {
  ModelFlags model;
  std::string prompt;
  std::string system;
  bool chat = false;
  int64_t max_tokens = 256;
  models::SamplingOptions sampling;
  bool seed_given = false;
  bool quiet = false;
};

void print_piece(const std::string& piece) {
  std::fwrite(piece.data(), 1, piece.size(), stdout);
  std::fflush(stdout);
}

void print_stats(const models::GenerationStats& s) {
  auto rate = [](int64_t n, double t) { return t > 0 ? double(n) / t : 0.0; };
  fmt::print(stderr, "\nloom: prompt {} tokens, {:.1f} tok/s; decode {} tokens, {:.1f} tok/s\n",
             s.prompt_tokens, rate(s.prompt_tokens, s.prompt_seconds), s.generated_tokens,
             rate(s.generated_tokens, s.decode_seconds));
}

void run_generate(GenerateFlags& f) {
  if (!f.seed_given) f.sampling.seed = std::random_device{}();
  models::Generator gen(f.model.model_path(), f.model.load_options(f.quiet));
  if (!gen.chat_template().warning.empty() && f.chat)
    fmt::print(stderr, "loom: {}\n", gen.chat_template().warning);

  if (!f.chat) {
    if (f.prompt.empty()) fail(ErrorKind::value, "give --prompt TEXT, or --chat");
    auto tokens = gen.text_tokens(f.prompt);
    print_piece(f.prompt);
    auto stats = gen.generate(tokens, f.max_tokens, f.sampling, print_piece);
    if (!f.quiet) print_stats(stats);
    return;
  }
  std::vector<models::ChatMessage> messages;
  if (!f.system.empty()) messages.push_back({"system", f.system});
  auto turn = [&](const std::string& user_text) {
    messages.push_back({"user", user_text});
    std::string reply;
    auto stats = gen.generate(gen.chat_tokens(messages), f.max_tokens, f.sampling,
                              [&](const std::string& piece) {
                                reply += piece;
                                print_piece(piece);
                              });
    messages.push_back({"assistant", reply});
    if (!f.quiet) print_stats(stats);
    std::fputs("\n", stdout);
  };
  if (!f.prompt.empty()) {
    turn(f.prompt);
    return;
  }
  // Interactive: one user turn per line, until end of input.
  fmt::print(stderr, "loom: chat with {} (end with Ctrl-D)\n", gen.model().config().name);
  std::string line;
  while (true) {
    std::fputs("> ", stdout);
    std::fflush(stdout);
    if (!std::getline(std::cin, line)) break;
    if (line.empty()) continue;
    turn(line);
  }
}

}  // namespace

void add_generate_command(CLI::App& app) {
  auto f = std::make_shared<GenerateFlags>();
  auto* cmd = app.add_subcommand("generate", "Generate text with a language model (GGUF)");
  f->model.add_to(*cmd);
  cmd->add_option("-p,--prompt", f->prompt, "The prompt (with --chat: the user's message)");
  cmd->add_flag("--chat", f->chat,
                "Use the model's chat template; without --prompt, an interactive chat");
  cmd->add_option("--system", f->system, "System message for --chat");
  cmd->add_option("-n,--max-tokens", f->max_tokens, "Tokens to generate at most")
      ->check(positive_integer(int64_t(1) << 20));
  cmd->add_option("--temp", f->sampling.temperature, "Temperature; 0 is greedy")
      ->check(CLI::Range(0.0, 100.0));
  cmd->add_option("--top-k", f->sampling.top_k, "Keep the k most likely tokens (0: all)")
      ->check(CLI::Range(0, 1 << 30));
  cmd->add_option("--top-p", f->sampling.top_p, "Nucleus sampling mass")
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--min-p", f->sampling.min_p, "Drop tokens below min-p times the best")
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--repeat-penalty", f->sampling.repetition_penalty,
                  "Penalty for the last 64 tokens (1: off)")
      ->check(CLI::Range(0.0, 100.0));
  cmd->add_option("--seed", f->sampling.seed, "Random seed (default: a fresh one)")
      ->each([f](const std::string&) { f->seed_given = true; });
  cmd->add_flag("-q,--quiet", f->quiet, "No progress or speed lines on stderr");
  f->sampling.temperature = 0.8f;
  f->sampling.top_k = 40;
  f->sampling.top_p = 0.95f;
  f->sampling.min_p = 0.05f;
  cmd->callback([f] { run_generate(*f); });
}

}  // namespace loom::tools
