// CPU op benchmarks: each compiles a one-op graph once and times steady-state runs
// (Executable::run into reused outputs), as a model's decode loop would see them.
#include <benchmark/benchmark.h>

#include <random>
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
void time_runs(benchmark::State& state, const Graph& g, Tensor output, const Feeds& feeds) {
  CompileOptions options;
  options.outputs = {output};
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

}  // namespace
