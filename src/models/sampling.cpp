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

  std::vector<int32_t> order(z.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = int32_t(i);
  // Most likely first; equal logits keep the lower id first so the result is deterministic.
  auto more_likely = [&](int32_t a, int32_t b) {
    return z[size_t(a)] != z[size_t(b)] ? z[size_t(a)] > z[size_t(b)] : a < b;
  };
  size_t keep = order.size();
  if (o.top_k > 0 && size_t(o.top_k) < keep) {
    keep = size_t(o.top_k);
    std::partial_sort(order.begin(), order.begin() + ptrdiff_t(keep), order.end(), more_likely);
    order.resize(keep);
  } else {
    std::sort(order.begin(), order.end(), more_likely);
  }

  // Softmax at the temperature, in double, from the largest logit (no overflow).
  const double max_logit = z[size_t(order[0])];
  if (std::isinf(max_logit) && max_logit < 0)
    fail(ErrorKind::value, "sampling: every logit is -infinity");
  std::vector<TokenProbability> dist;
  dist.reserve(order.size());
  double total = 0;
  for (int32_t id : order) {
    double p = std::isinf(max_logit)
                   ? (z[size_t(id)] == max_logit ? 1.0 : 0.0)
                   : std::exp((double(z[size_t(id)]) - max_logit) / o.temperature);
    dist.push_back({id, p});
    total += p;
  }
  for (auto& d : dist) d.probability /= total;

  if (o.top_p < 1.f) {
    double mass = 0;
    size_t n = 0;
    while (n < dist.size()) {
      mass += dist[n++].probability;
      if (mass >= o.top_p) break;
    }
    dist.resize(n);
  }
  if (o.min_p > 0.f) {
    double floor = o.min_p * dist[0].probability;
    size_t n = 1;  // the most likely token always stays
    while (n < dist.size() && dist[n].probability >= floor) ++n;
    dist.resize(n);
  }
  // Drop what has no chance (after -inf logits), then renormalise what is left.
  while (dist.size() > 1 && dist.back().probability == 0) dist.pop_back();
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
