// The C++ side of bench/python_overhead.py: Executable::run on a one-op and a 200-op graph
// of tiny tensors, so that the time is the runtime's per-run cost, not the kernels'. On a
// CUDA build with a GPU the same graphs also run on the GPU (feeds already there).
// Names: RunOverhead/<device>/<ops>. The Python script builds the same graphs.
#include <benchmark/benchmark.h>

#include <string>

#include "loom/loom.h"

namespace {

constexpr int64_t kElements = 16;

// A chain of `ops` alternating add and mul with small constants (as the Python script
// builds it; constant folding cannot remove any of them).
loom::Executable overhead_graph(int ops, loom::Device device) {
  loom::Graph g;
  loom::Tensor x = g.placeholder("x", {kElements});
  loom::Tensor y = x;
  for (int i = 0; i < ops; ++i) y = (i % 2 == 0) ? y + 1.0 : y * 0.5;
  loom::CompileOptions options;
  options.outputs = {y};
  options.device = device;
  return loom::compile(g, options);
}

void run_overhead(benchmark::State& state, loom::Device device, int ops) {
  loom::Executable exe = overhead_graph(ops, device);
  loom::Feeds feeds{{"x", loom::TensorData::zeros(loom::DType::f32, {kElements}, device)}};
  std::vector<loom::TensorData> outputs;
  exe.run(feeds, outputs);  // plans; later runs reuse the plan and the output buffer
  for (auto _ : state) {
    exe.run(feeds, outputs);
    benchmark::DoNotOptimize(outputs.data());
  }
}

const bool registered = [] {
  for (loom::Device device : {loom::Device::cpu(), loom::Device::cuda()}) {
    if (device.kind == loom::DeviceKind::cuda && !loom::cuda_available()) continue;
    for (int ops : {1, 200}) {
      std::string name = "RunOverhead/" +
                         std::string(device.kind == loom::DeviceKind::cpu ? "cpu" : "cuda") + "/" +
                         std::to_string(ops);
      benchmark::RegisterBenchmark(name.c_str(), [device, ops](benchmark::State& state) {
        run_overhead(state, device, ops);
      })->Unit(benchmark::kMicrosecond);
    }
  }
  return true;
}();

}  // namespace
