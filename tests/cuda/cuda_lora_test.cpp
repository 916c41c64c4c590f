// LoRA adapters on CUDA against the CPU: the tiny model and adapters of tests/data/lora, f32 on
// both, prefill then decode steps, unmerged through callables inside the captured decode graph
// (swapped between runs: the graph is captured again) and merged; logits agree within a bound.
#include <cmath>

#include "cuda_test_util.h"
#include "models/llama_model.h"

namespace loom::models {
namespace {

const std::string kData = std::string(LOOM_TEST_DATA_DIR) + "/lora/";

LlamaModel load(Device device, const std::string& lora = "", bool merge = false) {
  LlamaLoadOptions options;
  options.device = device;
  options.context = 64;
  options.dtype = DType::f32;
  options.lora = lora.empty() ? "" : kData + lora;
  options.lora_merge = merge;
  return LlamaModel::load(kData + "model_f32.gguf", options);
}

// The same tokens through both models, a prefill of 3 and then decode steps; every step's
// logits within 1e-4 of the CPU's (f32, different summation orders; logits of order 1).
void expect_same(LlamaModel& cpu, LlamaModel& gpu, const std::string& what) {
  const std::vector<int32_t> prompt{1, 265, 70, 262, 100, 263, 33, 266, 40, 41};
  cpu.reset();
  gpu.reset();
  for (size_t pos = 2; pos < prompt.size(); ++pos) {
    std::span<const int32_t> tokens =
        pos == 2 ? std::span(prompt).first(3) : std::span(prompt).subspan(pos, 1);
    auto c = cpu.forward(tokens);
    std::vector<float> want(c.begin(), c.end());
    auto g = gpu.forward(tokens);
    ASSERT_EQ(g.size(), want.size());
    double worst = 0;
    for (size_t i = 0; i < want.size(); ++i)
      worst = std::max(worst, std::fabs(double(g[i]) - double(want[i])));
    EXPECT_LE(worst, 1e-4) << what << " position " << pos;
  }
}

TEST(CudaLora, UnmergedSwapsAndMergedAgreeWithTheCpu) {
  LOOM_REQUIRE_CUDA();
  LlamaModel cpu = load(Device::cpu());
  LlamaModel gpu = load(testing::gpu());
  for (LlamaModel* m : {&cpu, &gpu}) {
    m->load_adapter(kData + "adapter_a", "a");
    m->load_adapter(kData + "adapter_b", "b");
    m->load_adapter(kData + "adapter_c", "c");
  }
  for (const char* name : {"a", "b", "", "a", "c", "b"}) {
    cpu.set_adapter(name);
    gpu.set_adapter(name);
    expect_same(cpu, gpu, std::string("adapter '") + name + "'");
  }
  EXPECT_EQ(gpu.graph_compilations(), 6);  // none, all seven, q and v: prefill + decode each
  if (!testing::cuda_tests_on_cpu()) {
    EXPECT_TRUE(gpu.decode_stats().replayed_graph);  // captured again after the last swap
  }
  LlamaModel cpu_merged = load(Device::cpu(), "adapter_a", true);
  LlamaModel gpu_merged = load(testing::gpu(), "adapter_a", true);
  expect_same(cpu_merged, gpu_merged, "merged a");
}

}  // namespace
}  // namespace loom::models
