// LoRA adapters on a Llama model against golden logits from an independent NumPy forward pass
// (tests/data/lora/make_lora.py: a tiny random Llama in f32 and Q8_0, PEFT adapters in
// Hugging Face's layout): unmerged (callables) through prefill and decode, swapped without
// recompiling the model, merged into the weights, and the two modes against each other.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "models/llama_model.h"
#include "test_util.h"

namespace loom::models {
namespace {

using loom::testing::error_kind;

const std::string kData = std::string(LOOM_TEST_DATA_DIR) + "/lora/";

struct Golden {
  std::vector<int32_t> prompt;
  // (model, adapter, scale) -> logits of every prompt position
  std::map<std::string, std::vector<std::vector<double>>> logits;
};

std::string key(const std::string& model, const std::string& adapter, double scale = 1.0) {
  std::ostringstream s;
  s << model << " " << adapter << " " << scale;
  return s.str();
}

const Golden& golden() {
  static const Golden g = [] {
    Golden out;
    std::ifstream in(kData + "golden.txt");
    std::string line;
    while (std::getline(in, line)) {
      std::istringstream s(line);
      std::string kind, model, adapter;
      s >> kind;
      if (kind == "prompt") {
        for (int32_t v; s >> v;) out.prompt.push_back(v);
        continue;
      }
      double scale;
      int pos;
      s >> model >> adapter >> scale >> pos;
      auto& rows = out.logits[key(model, adapter, scale)];
      rows.emplace_back();
      for (double v; s >> v;) rows.back().push_back(v);
    }
    return out;
  }();
  return g;
}

// f32 through two layers against float64. The logits (|z| up to ~4) end a chain of f32 sums of
// 64 and 96 terms, two RMS normalisations and a softmax per layer; measured against the golden,
// the worst element is 6e-6 off for f32 weights, 1.2e-5 with Q8_0 blocks multiplied exactly and
// 1.9e-5 merged (W + sBA rounded once more to f32), about 100 to 300 f32 ulps of the largest
// partial sums. The bound, 4e-5 + 2e-5 |z|, is three times the worst of those.
constexpr loom::testing::Tolerance kLogits{2e-5, 4e-5};

LlamaModel load(const std::string& model, LlamaLoadOptions options = {}) {
  options.int8_activations = false;  // exact f32 products with Q8_0 weights, as the golden
  options.context = 64;
  return LlamaModel::load(kData + "model_" + model + ".gguf", options);
}

// Prefill of the first 3 prompt tokens, then a decode step per token; each step's logits
// against the golden row of its position.
void expect_golden(LlamaModel& m, const std::string& model, const std::string& adapter,
                   double scale = 1.0) {
  const auto& g = golden();
  const auto it = g.logits.find(key(model, adapter, scale));
  ASSERT_NE(it, g.logits.end()) << key(model, adapter, scale);
  m.reset();
  const size_t first = 3;
  std::span<const int32_t> prompt(g.prompt);
  std::span<const float> got = m.forward(prompt.first(first));
  for (size_t pos = first - 1; pos < g.prompt.size(); ++pos) {
    if (pos >= first) got = m.forward(prompt.subspan(pos, 1));
    TensorData t =
        TensorData::from_vector(std::vector<float>(got.begin(), got.end()), {int64_t(got.size())});
    loom::testing::expect_close(t, it->second[pos], kLogits,
                                key(model, adapter, scale) + " position " + std::to_string(pos));
  }
}

// The largest logit change an adapter makes: the test is only as good as this is large.
double max_change(const std::string& model, const std::string& adapter) {
  const auto& g = golden();
  double worst = 0;
  const auto& a = g.logits.at(key(model, adapter));
  const auto& b = g.logits.at(key(model, "none"));
  for (size_t p = 0; p < a.size(); ++p)
    for (size_t i = 0; i < a[p].size(); ++i) worst = std::max(worst, std::abs(a[p][i] - b[p][i]));
  return worst;
}

TEST(LoraModel, AdaptersMoveTheGoldenLogitsFarBeyondTheTolerance) {
  for (const char* a : {"adapter_a", "adapter_b", "adapter_c"}) {
    EXPECT_GT(max_change("f32", a), 0.5) << a;
    EXPECT_GT(max_change("q8_0", a), 0.5) << a;
  }
}

TEST(LoraModel, UnmergedAtLoadMatchesGolden) {
  LlamaLoadOptions options;
  options.lora = kData + "adapter_a";
  LlamaModel m = load("f32", options);
  EXPECT_EQ(m.adapter(), "default");
  expect_golden(m, "f32", "adapter_a");
  options.lora_scale = 0.5;
  LlamaModel half = load("f32", options);
  expect_golden(half, "f32", "adapter_a", 0.5);
}

// One model, adapters swapped by binding callables: the model's graph is compiled once per
// set of targeted projections (none; all seven; q and v), never on a swap.
TEST(LoraModel, SwapsAdaptersWithoutRecompiling) {
  LlamaModel m = load("f32");
  EXPECT_EQ(m.graph_compilations(), 2);  // prefill and decode without adapters
  expect_golden(m, "f32", "none");
  m.load_adapter(kData + "adapter_a", "a");
  m.load_adapter(kData + "adapter_b", "b");
  m.load_adapter(kData + "adapter_c", "c");
  EXPECT_EQ(m.adapters(), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(m.graph_compilations(), 2);  // loading compiles only the adapters' callees
  m.set_adapter("a");
  EXPECT_EQ(m.graph_compilations(), 4);  // the graph with calls on all seven projections
  expect_golden(m, "f32", "adapter_a");
  m.set_adapter("b");
  expect_golden(m, "f32", "adapter_b");
  m.set_adapter("");
  expect_golden(m, "f32", "none");
  m.set_adapter("a");
  expect_golden(m, "f32", "adapter_a");
  EXPECT_EQ(m.graph_compilations(), 4);
  m.set_adapter("c");
  EXPECT_EQ(m.graph_compilations(), 6);  // q and v only: a graph of its own, once
  expect_golden(m, "f32", "adapter_c");
  m.set_adapter("b");
  expect_golden(m, "f32", "adapter_b");
  m.load_adapter(kData + "adapter_a", "b");  // replacing the active one rebinds it
  expect_golden(m, "f32", "adapter_a");
  EXPECT_EQ(m.graph_compilations(), 6);

  std::string message;
  EXPECT_EQ(error_kind([&] { m.set_adapter("nope"); }, &message), ErrorKind::value);
  EXPECT_NE(message.find("no LoRA adapter named 'nope' is loaded (loaded: a, b, c)"),
            std::string::npos)
      << message;
  EXPECT_EQ(error_kind([&] { m.load_adapter(kData + "missing", "x"); }), ErrorKind::io);
  EXPECT_EQ(m.adapter(), "b");  // a failed call changes nothing
}

// Switching adapters mid-sequence keeps the KV cache: a decode step after the switch sees
// the keys the old adapter wrote (so the result matches neither golden; it must run).
TEST(LoraModel, SwitchingKeepsTheCache) {
  LlamaModel m = load("f32");
  m.load_adapter(kData + "adapter_a", "a");
  const auto& prompt = golden().prompt;
  m.forward(std::span(prompt).first(4));
  m.set_adapter("a");
  m.forward(std::span(prompt).subspan(4, 1));
  EXPECT_EQ(m.position(), 5);
}

TEST(LoraModel, QuantizedBaseUnmergedMatchesGolden) {
  LlamaModel m = load("q8_0");
  EXPECT_EQ(m.quantized_weights(), 15);  // 7 projections x 2 layers + output
  m.load_adapter(kData + "adapter_a", "a");
  m.load_adapter(kData + "adapter_c", "c");
  for (const char* a : {"a", "c"}) {
    m.set_adapter(a);
    expect_golden(m, "q8_0", std::string("adapter_") + a);
  }
  EXPECT_EQ(m.quantized_weights(), 15);  // unmerged: the base weights stay in their blocks
}

TEST(LoraModel, MergedMatchesGoldenAndUnmerged) {
  for (const char* model : {"f32", "q8_0"}) {
    for (const char* adapter : {"adapter_a", "adapter_b", "adapter_c"}) {
      LlamaLoadOptions options;
      options.lora = kData + adapter;
      options.lora_merge = true;
      LlamaModel merged = load(model, options);
      EXPECT_EQ(merged.adapters().size(), 0u);
      EXPECT_EQ(merged.graph_compilations(), 2);
      if (std::string(model) == "q8_0") {  // merged projections became dense
        EXPECT_EQ(merged.quantized_weights(), std::string(adapter) == "adapter_c" ? 11 : 1);
      }
      expect_golden(merged, model, adapter);
      // Both modes against each other, position by position: W + sBA rounded once to f32
      // against Wx + s(xA^T)B^T, within twice the golden tolerance.
      options.lora_merge = false;
      LlamaModel unmerged = load(model, options);
      merged.reset();
      for (int32_t token : golden().prompt) {
        std::span<const float> a = merged.forward(std::span(&token, 1));
        std::vector<double> want(a.begin(), a.end());
        std::span<const float> b = unmerged.forward(std::span(&token, 1));
        TensorData got =
            TensorData::from_vector(std::vector<float>(b.begin(), b.end()), {int64_t(b.size())});
        loom::testing::expect_close(got, want, {2 * kLogits.rtol, 2 * kLogits.atol},
                                    std::string(model) + " " + adapter + " merged vs unmerged");
      }
    }
  }
}

}  // namespace
}  // namespace loom::models
