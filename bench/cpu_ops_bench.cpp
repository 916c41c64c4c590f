// CPU op benchmarks: each compiles a one-op graph once and times steady-state runs
// (Executable::run into reused outputs), as a model's decode loop would see them.
#include <benchmark/benchmark.h>

#include <cmath>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "loom/loom.h"

namespace {

using namespace loom;

TensorData random_data(Extents shape, uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  std::vector<float> values(size_t(numel(shape)));
  for (auto& v : values) v = dist(gen);
  return TensorData::from_floats(values, DType::f32, std::move(shape));
}

// Times exe.run(feeds, outputs) after one warm-up run that plans and allocates.
void time_runs(benchmark::State& state, const Graph& g, Tensor output, const Feeds& feeds,
               std::set<std::string> disabled_passes = {}) {
  CompileOptions options;
  options.outputs = {output};
  options.disabled_passes = std::move(disabled_passes);
  Executable exe = compile(g, options);
  std::vector<TensorData> outputs;
  exe.run(feeds, outputs);
  for (auto _ : state) {
    exe.run(feeds, outputs);
    benchmark::DoNotOptimize(outputs.front().data());
  }
}

void BM_MatmulF32(benchmark::State& state) {
  const int64_t n = state.range(0);
  Graph g;
  Tensor a = g.placeholder("a", {n, n});
  Tensor b = g.placeholder("b", {n, n});
  time_runs(state, g, matmul(a, b), {{"a", random_data({n, n}, 1)}, {"b", random_data({n, n}, 2)}});
  state.counters["FLOP/s"] =
      benchmark::Counter(2.0 * double(n * n * n), benchmark::Counter::kIsIterationInvariantRate,
                         benchmark::Counter::OneK::kIs1000);
}
BENCHMARK(BM_MatmulF32)->Arg(512)->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_SoftmaxF32(benchmark::State& state) {
  Graph g;
  Tensor x = g.placeholder("x", {256, 4096});
  time_runs(state, g, softmax(x, -1), {{"x", random_data({256, 4096}, 3)}});
  state.SetBytesProcessed(int64_t(state.iterations()) * 2 * 256 * 4096 * 4);
}
BENCHMARK(BM_SoftmaxF32)->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_RmsNormF32(benchmark::State& state) {
  Graph g;
  Tensor x = g.placeholder("x", {256, 4096});
  Tensor w = g.placeholder("w", {4096});
  time_runs(state, g, rms_norm(x, w),
            {{"x", random_data({256, 4096}, 4)}, {"w", random_data({4096}, 5)}});
  state.SetBytesProcessed(int64_t(state.iterations()) * 2 * 256 * 4096 * 4);
}
BENCHMARK(BM_RmsNormF32)->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_LayerNormF32(benchmark::State& state) {
  Graph g;
  Tensor x = g.placeholder("x", {256, 4096});
  time_runs(state, g, layer_norm(x), {{"x", random_data({256, 4096}, 8)}});
  state.SetBytesProcessed(int64_t(state.iterations()) * 2 * 256 * 4096 * 4);
}
BENCHMARK(BM_LayerNormF32)->Unit(benchmark::kMicrosecond)->UseRealTime();

// A reduction over the leading axis with few outputs: the reduced axis is split across
// threads (one task per output would leave all but a few idle).
void BM_MeanLeadingAxisF32(benchmark::State& state) {
  const int64_t rows = state.range(0), cols = state.range(1);
  Graph g;
  Tensor x = g.placeholder("x", {rows, cols});
  time_runs(state, g, mean(x, {0}), {{"x", random_data({rows, cols}, 9)}});
  state.SetBytesProcessed(int64_t(state.iterations()) * rows * cols * 4);
}
BENCHMARK(BM_MeanLeadingAxisF32)
    ->Args({65536, 8})
    ->Args({8192, 64})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

void BM_AddF32(benchmark::State& state) {
  const int64_t n = int64_t(1) << 22;
  Graph g;
  Tensor a = g.placeholder("a", {n});
  Tensor b = g.placeholder("b", {n});
  time_runs(state, g, add(a, b), {{"a", random_data({n}, 6)}, {"b", random_data({n}, 7)}});
  state.SetBytesProcessed(int64_t(state.iterations()) * 3 * n * 4);
}
BENCHMARK(BM_AddF32)->Unit(benchmark::kMicrosecond)->UseRealTime();

// Decode attention over a 4096-position cache: q [1, 32, 1, 128], k and v [1, 8, 4096, 128]
// f32 (GQA 4). Memory-bound: the rate is K and V's bytes per second, against the machine's
// copy bandwidth (issue 15's target: 60% of it).
void BM_AttentionDecodeL4096(benchmark::State& state) {
  const int64_t hq = 32, hkv = 8, len = 4096, d = 128;
  Graph g;
  Tensor q = g.placeholder("q", {1, hq, 1, d});
  Tensor k = g.placeholder("k", {1, hkv, len, d});
  Tensor v = g.placeholder("v", {1, hkv, len, d});
  time_runs(state, g, scaled_dot_product_attention(q, k, v),
            {{"q", random_data({1, hq, 1, d}, 11)},
             {"k", random_data({1, hkv, len, d}, 12)},
             {"v", random_data({1, hkv, len, d}, 13)}});
  state.SetBytesProcessed(int64_t(state.iterations()) * 2 * hkv * len * d * 4);
}
BENCHMARK(BM_AttentionDecodeL4096)->Unit(benchmark::kMicrosecond)->UseRealTime();

// Causal prefill of 1024 positions, q, k, v [1, 8, 1024, 64] f32 (issue 15's target: the fused
// op at least 3x faster than the composed graph). Range 0: the op with causal = true; 1: the
// composed graph, matmul, scale, a causal mask fed at run time, softmax, matmul (the
// fuse_attention pass off); 2: the same graph with the pass on, so the op reads the mask as
// an input (a constant causal mask would become causal = true, as in range 0).
void BM_AttentionPrefillS1024(benchmark::State& state) {
  const int64_t h = 8, len = 1024, d = 64;
  const int64_t variant = state.range(0);
  Graph g;
  Tensor q = g.placeholder("q", {1, h, len, d});
  Tensor k = g.placeholder("k", {1, h, len, d});
  Tensor v = g.placeholder("v", {1, h, len, d});
  Feeds feeds{{"q", random_data({1, h, len, d}, 21)},
              {"k", random_data({1, h, len, d}, 22)},
              {"v", random_data({1, h, len, d}, 23)}};
  Tensor y;
  if (variant == 0) {
    AttentionOptions o;
    o.causal = true;
    y = scaled_dot_product_attention(q, k, v, o);
  } else {
    std::vector<float> mask(size_t(len * len));
    for (int64_t i = 0; i < len; ++i)
      for (int64_t j = 0; j < len; ++j) mask[size_t(i * len + j)] = j <= i ? 0.f : -INFINITY;
    Tensor m = g.placeholder("mask", {len, len});
    feeds["mask"] = TensorData::from_floats(mask, DType::f32, {len, len});
    Tensor scores = matmul(q, transpose(k, {0, 1, 3, 2})) * (1.0 / 8.0) + m;
    y = matmul(softmax(scores, -1), v);
  }
  time_runs(state, g, y, feeds,
            variant == 1 ? std::set<std::string>{"fuse_attention"} : std::set<std::string>{});
  const char* labels[] = {"op, causal", "composed (fuse_attention off)", "fused, mask input"};
  state.SetLabel(labels[variant]);
}
BENCHMARK(BM_AttentionPrefillS1024)
    ->Arg(0)
    ->Arg(1)
    ->Arg(2)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
