// Sampling: distributions checked against a softmax computed here, and empirical
// frequencies over 1e5 seeded draws within 5 standard errors (plus 1e-3) of it.
#include "models/sampling.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>

#include "loom/error.h"

namespace loom::models {
namespace {

std::vector<double> softmax(const std::vector<float>& logits, double temperature) {
  double m = *std::max_element(logits.begin(), logits.end());
  std::vector<double> p;
  double total = 0;
  for (float z : logits) total += std::exp((z - m) / temperature);
  for (float z : logits) p.push_back(std::exp((z - m) / temperature) / total);
  return p;
}

// Draws n tokens and checks each token's frequency against `expected` (zero means never).
void expect_frequencies(Sampler& sampler, const std::vector<float>& logits,
                        const std::vector<double>& expected, int n = 100000) {
  std::vector<int> counts(logits.size(), 0);
  for (int i = 0; i < n; ++i) counts[size_t(sampler.sample(logits))]++;
  for (size_t t = 0; t < logits.size(); ++t) {
    double p = expected[t];
    double freq = double(counts[t]) / n;
    if (p == 0) {
      EXPECT_EQ(counts[t], 0) << "token " << t << " is outside the allowed set";
      continue;
    }
    double bound = 5 * std::sqrt(p * (1 - p) / n) + 1e-3;
    EXPECT_NEAR(freq, p, bound) << "token " << t;
  }
}

const std::vector<float> kLogits = {1.0f, 2.5f, -0.5f, 0.3f, 2.0f, -3.0f, 1.7f, 0.0f};

TEST(Sampling, GreedyPicksTheFirstMaximum) {
  Sampler greedy({.temperature = 0.f});
  EXPECT_EQ(greedy.sample(kLogits), 1);
  EXPECT_EQ(greedy.sample(std::vector<float>{0.f, 3.f, 3.f, 1.f}), 1);
}

TEST(Sampling, TinyTemperatureEqualsGreedy) {
  Sampler cold({.temperature = 1e-3f, .seed = 3});
  std::mt19937 rng(11);
  std::normal_distribution<float> normal;
  for (int trial = 0; trial < 200; ++trial) {
    std::vector<float> logits(50);
    for (auto& z : logits) z = normal(rng) * 3;
    int32_t best = int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
    EXPECT_EQ(cold.sample(logits), best);
  }
}

TEST(Sampling, TemperatureFrequenciesMatchSoftmax) {
  for (float temperature : {1.0f, 0.7f, 1.5f}) {
    Sampler sampler({.temperature = temperature, .seed = 42});
    auto dist = sampler.distribution(kLogits);
    auto expected = softmax(kLogits, temperature);
    ASSERT_EQ(dist.size(), kLogits.size());
    for (const auto& d : dist) EXPECT_NEAR(d.probability, expected[size_t(d.id)], 1e-12);
    expect_frequencies(sampler, kLogits, expected);
  }
}

TEST(Sampling, TopKNeverLeavesTheTopK) {
  Sampler sampler({.temperature = 1.f, .top_k = 3, .seed = 1});
  // The top 3 are ids 1 (2.5), 4 (2.0), 6 (1.7); renormalised softmax among them.
  auto full = softmax(kLogits, 1.0);
  std::vector<double> expected(kLogits.size(), 0.0);
  double mass = full[1] + full[4] + full[6];
  for (int id : {1, 4, 6}) expected[size_t(id)] = full[size_t(id)] / mass;
  expect_frequencies(sampler, kLogits, expected);
}

TEST(Sampling, TopPKeepsTheSmallestSetReachingP) {
  auto full = softmax(kLogits, 1.0);
  std::vector<size_t> order(kLogits.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return full[a] > full[b]; });
  for (float top_p : {0.3f, 0.6f, 0.9f}) {
    std::vector<double> expected(kLogits.size(), 0.0);
    double mass = 0;
    std::vector<size_t> kept;
    for (size_t id : order) {
      kept.push_back(id);
      mass += full[id];
      if (mass >= top_p) break;
    }
    for (size_t id : kept) expected[id] = full[id] / mass;
    Sampler sampler({.top_p = top_p, .seed = 5});
    expect_frequencies(sampler, kLogits, expected);
  }
}

TEST(Sampling, MinPDropsTokensBelowAFractionOfTheBest) {
  auto full = softmax(kLogits, 1.0);
  double best = *std::max_element(full.begin(), full.end());
  std::vector<double> expected(kLogits.size(), 0.0);
  double mass = 0;
  for (size_t t = 0; t < full.size(); ++t)
    if (full[t] >= 0.3 * best) mass += (expected[t] = full[t]);
  for (auto& p : expected) p /= mass;
  Sampler sampler({.min_p = 0.3f, .seed = 9});
  expect_frequencies(sampler, kLogits, expected);
}

TEST(Sampling, RepetitionPenaltyDividesPositiveAndMultipliesNegativeLogits) {
  Sampler sampler({.temperature = 1.f, .repetition_penalty = 2.f, .repetition_window = 2});
  sampler.accept(1);  // 2.5 -> 1.25
  sampler.accept(2);  // -0.5 -> -1.0
  std::vector<float> penalised = kLogits;
  penalised[1] = 1.25f;
  penalised[2] = -1.0f;
  auto expected = softmax(penalised, 1.0);
  for (const auto& d : sampler.distribution(kLogits))
    EXPECT_NEAR(d.probability, expected[size_t(d.id)], 1e-12);
  // The window holds the last 2 tokens: after two more, only token 5 (-3 -> -6) is penalised.
  sampler.accept(5);
  sampler.accept(5);
  penalised = kLogits;
  penalised[5] = -6.f;
  expected = softmax(penalised, 1.0);
  for (const auto& d : sampler.distribution(kLogits))
    EXPECT_NEAR(d.probability, expected[size_t(d.id)], 1e-12);
  // Greedy sees the penalty too: token 1 penalised, 4 (2.0) wins.
  Sampler greedy({.temperature = 0.f, .repetition_penalty = 2.f});
  greedy.accept(1);
  EXPECT_EQ(greedy.sample(kLogits), 4);
}

TEST(Sampling, SameSeedSameTokensAndResetReplays) {
  Sampler a({.seed = 1234}), b({.seed = 1234}), c({.seed = 99});
  std::vector<int32_t> first, second, other;
  for (int i = 0; i < 200; ++i) {
    first.push_back(a.sample(kLogits));
    second.push_back(b.sample(kLogits));
    other.push_back(c.sample(kLogits));
  }
  EXPECT_EQ(first, second);
  EXPECT_NE(first, other);
  a.reset();
  for (int i = 0; i < 200; ++i) EXPECT_EQ(a.sample(kLogits), first[size_t(i)]);
}

TEST(Sampling, NegativeInfinityIsNeverDrawn) {
  float inf = std::numeric_limits<float>::infinity();
  std::vector<float> logits = {-inf, 0.f, -inf, 0.f};
  Sampler sampler({.seed = 2});
  expect_frequencies(sampler, logits, {0, 0.5, 0, 0.5}, 20000);
  // Every filter path (none, min-p only, top-k, top-p) leaves -inf out.
  for (SamplingOptions o : {SamplingOptions{.min_p = 0.5f}, SamplingOptions{.top_k = 3},
                            SamplingOptions{.top_p = 0.99f}}) {
    Sampler filtered(o);
    expect_frequencies(filtered, logits, {0, 0.5, 0, 0.5}, 20000);
  }
  // A +inf logit takes all the mass.
  std::vector<float> certain = {0.f, inf, 1.f};
  for (SamplingOptions o : {SamplingOptions{}, SamplingOptions{.min_p = 0.1f}}) {
    auto dist = Sampler(o).distribution(certain);
    ASSERT_EQ(dist.size(), 1u);
    EXPECT_EQ(dist[0].id, 1);
    EXPECT_EQ(dist[0].probability, 1.0);
  }
}

TEST(Sampling, BadInputsAreErrors) {
  EXPECT_THROW(Sampler({.temperature = -1.f}), Error);
  EXPECT_THROW(Sampler({.top_k = -1}), Error);
  EXPECT_THROW(Sampler({.top_p = 0.f}), Error);
  EXPECT_THROW(Sampler({.top_p = 1.5f}), Error);
  EXPECT_THROW(Sampler({.min_p = 2.f}), Error);
  EXPECT_THROW(Sampler({.repetition_penalty = 0.f}), Error);
  Sampler sampler({});
  EXPECT_THROW(sampler.sample(std::vector<float>{}), Error);
  EXPECT_THROW(sampler.sample(std::vector<float>{0.f, std::nanf("")}), Error);
  float inf = std::numeric_limits<float>::infinity();
  EXPECT_THROW(sampler.sample(std::vector<float>{-inf, -inf}), Error);
}

}  // namespace
}  // namespace loom::models
