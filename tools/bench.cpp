// `loom bench`: prefill and decode tokens per second of a model, mean ± deviation over
// repetitions, printed in llama-bench's table form so the two read side by side.
#include <fmt/format.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <map>
#include <numeric>
#include <random>

#include "commands.h"
#include "flags.h"
#include "model_options.h"
#include "models/llama_model.h"

namespace loom::tools {

namespace {

struct BenchFlags {
  ModelFlags model;
  int64_t prompt = 512;
  int64_t generate = 128;
  int64_t repetitions = 5;
  int64_t depth = 0;  // tokens already in the KV cache when each test starts (llama-bench's -d)
  bool profile = false;
};

// One run, node by node: the time per op (summed over its nodes), the slowest first, on
// stderr.
void print_profile(const std::string& what, const RunStats& stats,
                   const std::vector<NodeTime>& times) {
  fmt::print(stderr, "loom: {}: {} kernel calls, {}\n", what, stats.kernels,
             stats.replayed_graph ? "replayed from a CUDA graph" : "launched one by one");
  std::map<std::string, std::pair<double, int>> by_op;
  double total = 0;
  for (const NodeTime& t : times) {
    auto& [ms, count] = by_op[t.op + " [" + t.kernel + "]"];
    ms += t.ms;
    ++count;
    total += t.ms;
  }
  std::vector<std::pair<double, std::string>> rows;
  for (const auto& [op, v] : by_op)
    rows.push_back({v.first, fmt::format("{:>5} x {}", v.second, op)});
  std::sort(rows.rbegin(), rows.rend());
  fmt::print(stderr, "loom: profiled {} (each node timed alone): {:.3f} ms\n", what, total);
  for (const auto& [ms, row] : rows) fmt::print(stderr, "  {:8.3f} ms  {}\n", ms, row);
}

struct MeanDeviation {
  double mean = 0, deviation = 0;
};

MeanDeviation summarise(const std::vector<double>& rates) {
  MeanDeviation m;
  if (rates.empty()) return m;
  m.mean = std::accumulate(rates.begin(), rates.end(), 0.0) / double(rates.size());
  double sq = 0;
  for (double r : rates) sq += (r - m.mean) * (r - m.mean);
  m.deviation = rates.size() > 1 ? std::sqrt(sq / double(rates.size() - 1)) : 0.0;
  return m;
}

double seconds(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

void run_bench(const BenchFlags& f) {
  models::LlamaLoadOptions options = f.model.load_options(false);
  options.context = std::max<int64_t>(f.model.context, f.depth + f.prompt + f.generate + 1);
  const std::string path = f.model.model_path();
  models::LlamaModel model = models::LlamaModel::load(path, options);
  const auto& c = model.config();
  std::mt19937 rng(1234);
  std::uniform_int_distribution<int32_t> token(0, int32_t(c.vocab) - 1);

  std::vector<double> prefill_rates, decode_rates;
  // Each test starts from an empty cache, or one holding `depth` tokens (not timed).
  auto start_at_depth = [&] {
    model.reset();
    if (f.depth == 0) return;
    std::vector<int32_t> ids(static_cast<size_t>(f.depth));
    for (auto& t : ids) t = token(rng);
    model.forward(ids, false);
  };
  // One warm-up of each path, then the timed repetitions.
  for (int64_t rep = -1; rep < f.repetitions; ++rep) {
    if (f.prompt > 0) {
      std::vector<int32_t> ids(static_cast<size_t>(f.prompt));
      for (auto& t : ids) t = token(rng);
      start_at_depth();
      auto start = std::chrono::steady_clock::now();
      model.forward(ids, false);
      if (rep >= 0) prefill_rates.push_back(double(f.prompt) / seconds(start));
    }
    if (f.generate > 0) {
      start_at_depth();
      int32_t t = token(rng);
      auto start = std::chrono::steady_clock::now();
      for (int64_t i = 0; i < f.generate; ++i) {
        model.forward(std::span(&t, 1), false);
        t = model.greedy_token();
      }
      if (rep >= 0) decode_rates.push_back(double(f.generate) / seconds(start));
    }
  }

  if (f.profile && f.prompt > 1) {
    std::vector<int32_t> ids(static_cast<size_t>(f.prompt));
    for (auto& t : ids) t = token(rng);
    model.reset();
    model.forward(ids, false);  // the run the stats describe
    print_profile("prefill of " + std::to_string(f.prompt) + " tokens", model.prefill_stats(),
                  model.profile_prefill(ids));
  }
  if (f.profile && f.generate > 0)
    print_profile("decode step", model.decode_stats(), model.profile_decode(1));
  const double mib = double(std::filesystem::file_size(path)) / (1024.0 * 1024.0);
  const std::string backend = model.device().kind == DeviceKind::cpu ? "CPU" : "CUDA";
  const int threads = model.device().kind == DeviceKind::cpu ? omp_get_max_threads() : 0;
  const std::string weights = model.quantized_weights() > 0 ? "GGUF blocks" : "dense";
  fmt::print("| model | size | backend | threads | weights | dtype | test | t/s |\n");
  fmt::print("| --- | ---: | --- | ---: | --- | --- | ---: | ---: |\n");
  auto row = [&](const std::string& test, const std::vector<double>& rates) {
    MeanDeviation m = summarise(rates);
    fmt::print("| {} {} | {:.2f} MiB | {} | {} | {} | {} | {} | {:.2f} ± {:.2f} |\n",
               c.architecture, c.name, mib, backend, threads, weights, dtype_name(model.dtype()),
               test, m.mean, m.deviation);
  };
  const std::string at = f.depth > 0 ? " @ d" + std::to_string(f.depth) : "";
  if (f.prompt > 0) row("pp" + std::to_string(f.prompt) + at, prefill_rates);
  if (f.generate > 0) row("tg" + std::to_string(f.generate) + at, decode_rates);
}

}  // namespace

void add_bench_command(CLI::App& app) {
  auto f = std::make_shared<BenchFlags>();
  auto* cmd =
      app.add_subcommand("bench", "Prefill and decode speed of a model (llama-bench's table)");
  f->model.add_to(*cmd);
  cmd->add_option("-p,--n-prompt", f->prompt, "Prompt tokens for the prefill test (0: skip)")
      ->check(CLI::Range(int64_t(0), int64_t(1) << 20));
  cmd->add_option("-n,--n-gen", f->generate, "Tokens for the decode test (0: skip)")
      ->check(CLI::Range(int64_t(0), int64_t(1) << 20));
  cmd->add_option("-r,--repetitions", f->repetitions, "Timed repetitions of each test")
      ->check(positive_integer(1000));
  cmd->add_option("-d,--n-depth", f->depth,
                  "Tokens in the KV cache before each test (prefilled, not timed), as "
                  "llama-bench's -d")
      ->check(CLI::Range(int64_t(0), int64_t(1) << 20));
  cmd->add_flag("--profile", f->profile,
                "After the tests, time each node of a prefill (with -p) and of one decode step, "
                "and print the time per op");
  cmd->callback([f] { run_bench(*f); });
}

}  // namespace loom::tools
