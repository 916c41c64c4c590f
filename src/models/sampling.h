// Choosing the next token from a model's logits: greedy, or a draw after temperature, top-k,
// top-p and min-p, with a repetition penalty over the last tokens. Draws come from a seeded
// std::mt19937_64 and Loom's own mapping to [0, 1), so a seed gives the same tokens on every
// platform and standard library.
#pragma once

#include <cstdint>
#include <deque>
#include <random>
#include <span>
#include <vector>

namespace loom::models {

struct SamplingOptions {
  float temperature = 1.f;  // <= 0: greedy (the most likely token, the lowest id on ties)
  int32_t top_k = 0;        // keep the k most likely tokens; 0: all
  float top_p = 1.f;        // keep the fewest most likely tokens whose mass reaches p; 1: all
  float min_p = 0.f;        // drop tokens less likely than min_p times the most likely one
  float repetition_penalty = 1.f;  // > 1 discourages the last tokens (CTRL's rule); 1: off
  int32_t repetition_window = 64;  // how many recent tokens the penalty looks at
  uint64_t seed = 0;
};

// One candidate of the final distribution.
struct TokenProbability {
  int32_t id;
  double probability;
};

class Sampler {
 public:
  // Throws loom::Error for options out of range (negative top_k, top_p outside (0, 1], ...).
  explicit Sampler(SamplingOptions options);

  // Picks a token from `logits` (one per vocabulary entry) and remembers it for the penalty.
  // Throws loom::Error for empty logits or a NaN.
  int32_t sample(std::span<const float> logits);
  // The distribution sample() draws from: after the penalty, temperature, top-k, top-p and
  // min-p (in that order), renormalised, without zero-probability tokens. Most likely first
  // when a filter is on; in id order otherwise. Greedy gives one token with probability 1.
  std::vector<TokenProbability> distribution(std::span<const float> logits) const;

  // Adds a token to the history the penalty sees (sample() does it for its own picks; call
  // this for prompt tokens). reset() forgets the history and reseeds.
  void accept(int32_t token);
  void reset();
  const SamplingOptions& options() const { return options_; }

 private:
  SamplingOptions options_;
  std::mt19937_64 rng_;
  std::deque<int32_t> history_;
};

}  // namespace loom::models
