#include "models/sampling.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <unordered_set>

#include "loom/error.h"

namespace loom::models {

Sampler::Sampler(SamplingOptions options) : options_(options), rng_(options.seed) {
  const auto& o = options_;
  auto bad = [](const std::string& what) { fail(ErrorKind::value, "sampling: " + what); };
  if (!(o.temperature >= 0.f) || std::isinf(o.temperature))
    bad("temperature must be a finite number >= 0, not " + std::to_string(o.temperature));
  if (o.top_k < 0) bad("top_k must be >= 0 (0 keeps all), not " + std::to_string(o.top_k));
  if (!(o.top_p > 0.f && o.top_p <= 1.f))
    bad("top_p must be in (0, 1], not " + std::to_string(o.top_p));
  if (!(o.min_p >= 0.f && o.min_p <= 1.f))
    bad("min_p must be in [0, 1], not " + std::to_string(o.min_p));
  if (!(o.repetition_penalty > 0.f) || std::isinf(o.repetition_penalty))
    bad("repetition_penalty must be a finite number > 0, not " +
        std::to_string(o.repetition_penalty));
  if (o.repetition_window < 0)
    bad("repetition_window must be >= 0, not " + std::to_string(o.repetition_window));
}

void Sampler::accept(int32_t token) {
  if (options_.repetition_window == 0) return;
  history_.push_back(token);
  while (history_.size() > size_t(options_.repetition_window)) history_.pop_front();
}

void Sampler::reset() {
  history_.clear();
  rng_.seed(options_.seed);
}

std::vector<TokenProbability> Sampler::distribution(std::span<const float> logits) const {
  const auto& o = options_;
  if (logits.empty()) fail(ErrorKind::value, "sampling: no logits");
  std::vector<float> z(logits.begin(), logits.end());
  for (size_t i = 0; i < z.size(); ++i)
    if (std::isnan(z[i]))
      fail(ErrorKind::value, "sampling: logit " + std::to_string(i) + " is NaN");

  if (o.repetition_penalty != 1.f) {
    std::unordered_set<int32_t> seen(history_.begin(), history_.end());
    for (int32_t id : seen) {
      if (id < 0 || size_t(id) >= z.size()) continue;
      float& v = z[size_t(id)];
      v = v > 0 ? v / o.repetition_penalty : v * o.repetition_penalty;
    }
  }

  if (o.temperature <= 0.f) {  // greedy: the first maximum
    size_t best = size_t(std::max_element(z.begin(), z.end()) - z.begin());
    return {{int32_t(best), 1.0}};
  }

  const double max_logit = *std::max_element(z.begin(), z.end());
  if (std::isinf(max_logit) && max_logit < 0)
    fail(ErrorKind::value, "sampling: every logit is -infinity");
  // Softmax weights at the temperature, in double, from the largest logit (no overflow; a +inf
  // logit takes all the mass).
  std::vector<double> w(z.size());
  for (size_t i = 0; i < z.size(); ++i)
    w[i] = std::isinf(max_logit) ? (z[i] == max_logit ? 1.0 : 0.0)
                                 : std::exp((double(z[i]) - max_logit) / o.temperature);
  // Most likely first; equal logits keep the lower id first so the result is deterministic.
  auto more_likely = [&](int32_t a, int32_t b) {
    return z[size_t(a)] != z[size_t(b)] ? z[size_t(a)] > z[size_t(b)] : a < b;
  };
  std::vector<int32_t> order;
  order.reserve(z.size());
  if (o.top_k > 0 || o.top_p < 1.f) {
    for (size_t i = 0; i < z.size(); ++i) order.push_back(int32_t(i));
  } else {
    // No rank-based filter: min_p keeps the tokens whose weight relative to the best one
    // reaches it, and nothing else needs the whole vocabulary sorted.
    for (size_t i = 0; i < z.size(); ++i)
      if (o.min_p <= 0.f || w[i] >= o.min_p) order.push_back(int32_t(i));
  }
  if (o.top_k > 0 && size_t(o.top_k) < order.size()) {
    std::nth_element(order.begin(), order.begin() + o.top_k, order.end(), more_likely);
    order.resize(size_t(o.top_k));
  }
  double total = 0;
  for (int32_t id : order) total += w[size_t(id)];

  if (o.top_p < 1.f) {
    // Sort only as far as the mass reaches top_p: the best 64 first, then 4 times as many
    // until it does (a peaked distribution stops early; a flat one ends in a full sort).
    size_t sorted = 0;
    for (size_t m = std::min<size_t>(64, order.size());; m = std::min(order.size(), m * 4)) {
      if (m < order.size())
        std::nth_element(order.begin() + ptrdiff_t(sorted), order.begin() + ptrdiff_t(m),
                         order.end(), more_likely);
      std::sort(order.begin() + ptrdiff_t(sorted), order.begin() + ptrdiff_t(m), more_likely);
      double mass = 0;
      size_t n = 0;
      while (n < m) {
        mass += w[size_t(order[n++])] / total;
        if (mass >= o.top_p) break;
      }
      if (mass >= o.top_p || m == order.size()) {
        order.resize(n);
        break;
      }
      sorted = m;
    }
  } else if (o.top_k > 0 || o.min_p > 0.f) {
    std::sort(order.begin(), order.end(), more_likely);
  }

  std::vector<TokenProbability> dist;
  dist.reserve(order.size());
  for (int32_t id : order) dist.push_back({id, w[size_t(id)] / total});
  if (o.min_p > 0.f) {
    double floor = o.min_p * dist[0].probability;
    size_t n = 1;  // the most likely token always stays
    while (n < dist.size() && dist[n].probability >= floor) ++n;
    dist.resize(n);
  }
  // Drop what has no chance (-inf logits, underflow), then renormalise what is left; the most
  // likely token always has a positive weight.
  std::erase_if(dist, [](const TokenProbability& d) { return d.probability == 0; });
  total = 0;
  for (const auto& d : dist) total += d.probability;
  for (auto& d : dist) d.probability /= total;
  return dist;
}

int32_t Sampler::sample(std::span<const float> logits) {
  std::vector<TokenProbability> dist = distribution(logits);
  int32_t token = dist.back().id;
  if (dist.size() > 1) {
    // 53 random bits to a double in [0, 1): the same on every standard library, unlike
    // std::uniform_real_distribution.
    double u = double(rng_() >> 11) * 0x1.0p-53;
    double mass = 0;
    for (const auto& d : dist) {
      mass += d.probability;
      if (u < mass) {
        token = d.id;
        break;
      }
    }
  }
  accept(token);
  return token;
}

}  // namespace loom::models
