// The GGUF-block matmul y[M, N] = x[M, K] · Wᵀ at the shapes of SmolLM2-135M (576 wide, 1536
// MLP, 192 K/V rows, a 49152-row Q8_0 output head) and a 4096 x 4096 Q4_0 weight. The rate is
// GB/s of weight bytes (what a GEMV has to stream); items/s counts rows of x (tokens).
// Run with OMP_NUM_THREADS=1 for the per-core figure. best_us / best_GBps: the fastest call.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <random>
#include <utility>
#include <vector>

#include "io/ggml_types.h"
#include "loom/quant.h"

namespace {

using loom::io::GgmlType;

// The fastest single call, beside Google Benchmark's mean: on the shared development machine
// most calls lose time slices to other processes, and the best call is the closest to what an
// idle core does.
struct BestCall {
  std::chrono::steady_clock::time_point t0;
  double best_s = 1e30;
  void start() { t0 = std::chrono::steady_clock::now(); }
  void stop() {
    best_s = std::min(best_s,
                      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  void report(benchmark::State& state, double bytes) const {
    state.counters["best_us"] = best_s * 1e6;
    state.counters["best_GBps"] = bytes / best_s / 1e9;
  }
};

void quantized_gemm(benchmark::State& state, GgmlType type, bool avx2) {
  const int64_t n = state.range(0), k = state.range(1), m = state.range(2);
  const auto& t = loom::io::ggml_type_traits(type);
  std::vector<uint8_t> blocks(static_cast<size_t>(n * k / t.block_size * t.bytes_per_block));
  std::mt19937 gen(1);
  for (auto& b : blocks) b = uint8_t(gen());
  // Scales: a fixed small f16 (0x2000 ~ 0.0078) at the start of each block.
  for (size_t b = 0; b < blocks.size(); b += size_t(t.bytes_per_block)) {
    blocks[b] = 0x00;
    blocks[b + 1] = 0x20;
    if (type == GgmlType::Q4_1 || type == GgmlType::Q5_1 || type == GgmlType::Q4_K ||
        type == GgmlType::Q5_K)
      blocks[b + 3] = 0x20, blocks[b + 2] = 0;
    if (type == GgmlType::Q6_K) blocks[b + 208] = 0, blocks[b + 209] = 0x20;  // d is last
  }
  std::vector<float> x(size_t(m * k)), y(static_cast<size_t>(m * n));
  std::normal_distribution<float> dist;
  for (float& v : x) v = dist(gen);
  loom::quant::GemmOptions options;
  options.allow_avx2 = avx2;
  BestCall best;
  for (auto _ : state) {
    best.start();
    loom::quant::ggml_matmul(uint32_t(type), blocks.data(), int64_t(blocks.size()), n, k, x.data(),
                             loom::DType::f32, m, y.data(), options);
    benchmark::DoNotOptimize(y.data());
    best.stop();
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(blocks.size()));
  state.SetItemsProcessed(int64_t(state.iterations()) * m);
  best.report(state, double(blocks.size()));
}

// {N, K, M}
void smollm_shapes(benchmark::internal::Benchmark* b) {
  for (int64_t m : {1, 4, 8, 128}) {
    b->Args({576, 576, m});   // q, o projections
    b->Args({192, 576, m});   // k, v projections
    b->Args({1536, 576, m});  // gate, up
    b->Args({576, 1536, m});  // down
  }
  b->UseRealTime();
}

BENCHMARK_CAPTURE(quantized_gemm, Q4_1, GgmlType::Q4_1, true)->Apply(smollm_shapes);
BENCHMARK_CAPTURE(quantized_gemm, Q4_0, GgmlType::Q4_0, true)
    ->Args({576, 576, 1})
    ->Args({1536, 576, 1})
    ->Args({576, 1536, 1})
    ->Args({4096, 4096, 1})
    ->Args({4096, 4096, 2})
    ->Args({4096, 4096, 4})
    ->Args({4096, 4096, 8})
    ->Args({4096, 4096, 128})
    ->UseRealTime();
BENCHMARK_CAPTURE(quantized_gemm, Q8_0, GgmlType::Q8_0, true)
    ->Args({49152, 576, 1})  // SmolLM2's tied output head
    ->Args({49152, 576, 8})
    ->Args({4096, 4096, 1})
    ->Args({4096, 4096, 8})
    ->UseRealTime();
// The other formats with integer paths.
void other_formats(benchmark::internal::Benchmark* b) {
  b->Args({4096, 4096, 1})->Args({4096, 4096, 8})->UseRealTime();
}
BENCHMARK_CAPTURE(quantized_gemm, Q5_0, GgmlType::Q5_0, true)->Apply(other_formats);
BENCHMARK_CAPTURE(quantized_gemm, Q5_1, GgmlType::Q5_1, true)->Apply(other_formats);
BENCHMARK_CAPTURE(quantized_gemm, IQ4_NL, GgmlType::IQ4_NL, true)->Apply(other_formats);
BENCHMARK_CAPTURE(quantized_gemm, Q4_K, GgmlType::Q4_K, true)->Apply(other_formats);
BENCHMARK_CAPTURE(quantized_gemm, Q5_K, GgmlType::Q5_K, true)->Apply(other_formats);
BENCHMARK_CAPTURE(quantized_gemm, Q6_K, GgmlType::Q6_K, true)->Apply(other_formats);

BENCHMARK_CAPTURE(quantized_gemm, Q4_0_portable, GgmlType::Q4_0, false)
    ->Args({4096, 4096, 1})
    ->UseRealTime();
BENCHMARK_CAPTURE(quantized_gemm, Q8_0_portable, GgmlType::Q8_0, false)
    ->Args({4096, 4096, 1})
    ->UseRealTime();

// Every matmul of one SmolLM2-135M decode step (30 layers of q, k, v, o, gate, up, down in
// Q4_1, then the 49152-row Q8_0 output head), each layer with its own weights so that the
// 96 MB stream from memory as in the model. items/s is tokens/s of the matmuls alone; compare
// with llama.cpp's whole decode (165 tokens/s on the development machine, 2 threads).
void smollm2_decode_matmuls(benchmark::State& state) {
  struct Matmul {
    GgmlType type;
    int64_t n, k;
    std::vector<uint8_t> blocks;
  };
  std::vector<Matmul> step;
  std::mt19937 gen(1);
  auto add = [&](GgmlType type, int64_t n, int64_t k) {
    const auto& t = loom::io::ggml_type_traits(type);
    std::vector<uint8_t> blocks(static_cast<size_t>(n * k / 32 * t.bytes_per_block));
    for (auto& b : blocks) b = uint8_t(gen());
    for (size_t b = 0; b < blocks.size(); b += size_t(t.bytes_per_block))
      blocks[b] = 0, blocks[b + 1] = 0x20, blocks[b + 2] = 0, blocks[b + 3] = 0x20;
    step.push_back({type, n, k, std::move(blocks)});
  };
  for (int layer = 0; layer < 30; ++layer)
    for (auto [n, k] : {std::pair{576, 576},
                        {192, 576},
                        {192, 576},
                        {576, 576},
                        {1536, 576},
                        {1536, 576},
                        {576, 1536}})
      add(GgmlType::Q4_1, n, k);
  add(GgmlType::Q8_0, 49152, 576);
  std::vector<float> x(1536, 0.25f), y(49152);
  int64_t bytes = 0;
  for (const Matmul& mm : step) bytes += int64_t(mm.blocks.size());
  BestCall best;
  for (auto _ : state) {
    best.start();
    for (const Matmul& mm : step)
      loom::quant::ggml_matmul(uint32_t(mm.type), mm.blocks.data(), int64_t(mm.blocks.size()), mm.n,
                               mm.k, x.data(), loom::DType::f32, 1, y.data());
    benchmark::DoNotOptimize(y.data());
    best.stop();
  }
  best.report(state, double(bytes));
  state.SetBytesProcessed(int64_t(state.iterations()) * bytes);
  state.SetItemsProcessed(int64_t(state.iterations()));
}
BENCHMARK(smollm2_decode_matmuls)->UseRealTime()->Unit(benchmark::kMillisecond);

// A 4096 x 4096 GEMV (M = 1) whose weight streams from memory: eight weights of the format
// (75 MB of Q4_0, 142 MB of Q8_0, past any L3) taken in turn, so the rate is what DRAM gives,
// for issue 16's target (70% of the copy bandwidth below). Default threads.
void gemv_from_memory(benchmark::State& state, GgmlType type) {
  const int64_t n = 4096, k = 4096;
  const auto& t = loom::io::ggml_type_traits(type);
  std::mt19937 gen(3);
  std::vector<std::vector<uint8_t>> weights(8);
  for (auto& blocks : weights) {
    blocks.resize(static_cast<size_t>(n * k / 32 * t.bytes_per_block));
    for (auto& b : blocks) b = uint8_t(gen());
    for (size_t b = 0; b < blocks.size(); b += size_t(t.bytes_per_block))
      blocks[b] = 0, blocks[b + 1] = 0x20;
  }
  std::vector<float> x(static_cast<size_t>(k), 0.25f), y(static_cast<size_t>(n));
  size_t next = 0;
  for (auto _ : state) {
    const auto& w = weights[next++ % weights.size()];
    loom::quant::ggml_matmul(uint32_t(type), w.data(), int64_t(w.size()), n, k, x.data(),
                             loom::DType::f32, 1, y.data());
    benchmark::DoNotOptimize(y.data());
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(weights[0].size()));
}
BENCHMARK_CAPTURE(gemv_from_memory, Q4_0, GgmlType::Q4_0)->UseRealTime();
BENCHMARK_CAPTURE(gemv_from_memory, Q8_0, GgmlType::Q8_0)->UseRealTime();

// The copy bandwidth the GEMV rates are held against: memcpy of 256 MB, bytes read plus
// written per second (NumPy's copyto on this machine measures the same).
void copy_bandwidth(benchmark::State& state) {
  const size_t bytes = size_t(256) << 20;
  std::vector<char> a(bytes, 1), b(bytes);
  for (auto _ : state) {
    std::memcpy(b.data(), a.data(), bytes);
    benchmark::DoNotOptimize(b.data());
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(2 * bytes));
}
BENCHMARK(copy_bandwidth)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
