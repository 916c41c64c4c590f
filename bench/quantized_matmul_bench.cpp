// GEMV (M = 1) and a small GEMM on a 4096 x 4096 weight in GGUF blocks; the rate is GB/s of
// weight bytes (the bytes a GEMV has to stream).
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "io/ggml_types.h"
#include "loom/quant.h"

namespace {

using loom::io::GgmlType;

void quantized_gemm(benchmark::State& state, GgmlType type, bool avx2) {
  const int64_t n = 4096, k = 4096, m = state.range(0);
  const auto& t = loom::io::ggml_type_traits(type);
  std::vector<uint8_t> blocks(static_cast<size_t>(n * k / t.block_size * t.bytes_per_block));
  std::mt19937 gen(1);
  for (auto& b : blocks) b = uint8_t(gen());
  // Scales: a fixed small f16 (0x2000 ~ 0.0078) at the start of each block.
  for (size_t b = 0; b < blocks.size(); b += size_t(t.bytes_per_block)) {
    blocks[b] = 0x00;
    blocks[b + 1] = 0x20;
    if (type == GgmlType::Q4_1) blocks[b + 3] = 0x20, blocks[b + 2] = 0;
  }
  std::vector<float> x(size_t(m * k), 0.5f), y(static_cast<size_t>(m * n));
  loom::quant::GemmOptions options;
  options.allow_avx2 = avx2;
  for (auto _ : state) {
    loom::quant::ggml_matmul(uint32_t(type), blocks.data(), int64_t(blocks.size()), n, k, x.data(),
                             loom::DType::f32, m, y.data(), options);
    benchmark::DoNotOptimize(y.data());
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(blocks.size()));
}

BENCHMARK_CAPTURE(quantized_gemm, Q4_0, GgmlType::Q4_0, true)->Arg(1)->Arg(8)->UseRealTime();
BENCHMARK_CAPTURE(quantized_gemm, Q4_1, GgmlType::Q4_1, true)->Arg(1)->UseRealTime();
BENCHMARK_CAPTURE(quantized_gemm, Q8_0, GgmlType::Q8_0, true)->Arg(1)->Arg(8)->UseRealTime();
BENCHMARK_CAPTURE(quantized_gemm, Q4_0_portable, GgmlType::Q4_0, false)->Arg(1)->UseRealTime();
BENCHMARK_CAPTURE(quantized_gemm, Q8_0_portable, GgmlType::Q8_0, false)->Arg(1)->UseRealTime();

}  // namespace
