// The Llama graph on the real SmolLM2-135M-Instruct against golden logits from an independent
// NumPy implementation (tests/data/smollm2/make_golden.py). Skips when models/ has no model
// (scripts/fetch_model.sh fetches it; CI's set-up does).
#include "models/llama_model.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "test_util.h"

namespace loom::models {

namespace {

const std::string kModel = std::string(LOOM_MODELS_DIR) + "/SmolLM2-135M-Instruct.Q4_1.gguf";

struct PositionGolden {
  std::vector<int64_t> top;
  std::vector<double> top_logits;
  double logsumexp = 0;
};

struct PromptGolden {
  std::vector<int32_t> ids;
  std::vector<PositionGolden> positions;
  std::vector<int32_t> greedy;
};

std::map<std::string, PromptGolden> read_golden(const std::string& file = "golden.txt") {
  std::ifstream in(std::string(LOOM_TEST_DATA_DIR) + "/smollm2/" + file);
  std::map<std::string, PromptGolden> out;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream s(line);
    std::string kind, name;
    s >> kind >> name;
    PromptGolden& g = out[name];
    if (kind == "prompt" || kind == "greedy") {
      auto& dst = kind == "prompt" ? g.ids : g.greedy;
      for (int32_t v; s >> v;) dst.push_back(v);
    } else if (kind == "logits") {
      PositionGolden p;
      int pos;
      s >> pos;
      p.top.resize(5);
      p.top_logits.resize(5);
      for (auto& v : p.top) s >> v;
      for (auto& v : p.top_logits) s >> v;
      s >> p.logsumexp;
      g.positions.push_back(p);
    }
  }
  return out;
}

double logsumexp(std::span<const float> row) {
  double mx = -INFINITY, sum = 0;
  for (float v : row) mx = std::max(mx, double(v));
  for (float v : row) sum += std::exp(double(v) - mx);
  return mx + std::log(sum);
}

// f32 arithmetic over 30 layers against float64: logits of magnitude ~20 agree to ~1e-3.
constexpr double kLogitTolerance = 5e-3;
// q, k and v rounded to f16 (11 significant bits) in prefill's attention of 30 layers: the
// logits moved by up to 0.0084 on the CPU (2026-12-02); f32 attention stays within 1e-3.
constexpr double kF16AttentionTolerance = 2e-2;

// Logits within `tolerance` of the golden ones. With `probabilities`, the golden top five's
// probabilities instead (exp(logit - logsumexp), within `tolerance` absolutely): how the
// prediction moves, not how a token of probability 1e-4 does. The argmax must be the golden
// one unless the golden top two logits are within 2 x `margin`.
void expect_position(std::span<const float> logits, const PositionGolden& g, const std::string& at,
                     double tolerance, bool probabilities = false, double margin = 0) {
  int64_t best = 0;
  for (size_t i = 1; i < logits.size(); ++i)
    if (logits[i] > logits[size_t(best)]) best = int64_t(i);
  if (g.top_logits[0] - g.top_logits[1] > 2 * (probabilities ? margin : tolerance)) {
    EXPECT_EQ(best, g.top[0]) << at;
  }
  const double lse = logsumexp(logits);
  for (size_t i = 0; i < g.top.size(); ++i) {
    if (probabilities) {
      EXPECT_NEAR(std::exp(logits[size_t(g.top[i])] - lse), std::exp(g.top_logits[i] - g.logsumexp),
                  tolerance)
          << at << " top " << i;
    } else {
      EXPECT_NEAR(logits[size_t(g.top[i])], g.top_logits[i], tolerance) << at << " top " << i;
    }
  }
  if (!probabilities) {
    EXPECT_NEAR(lse, g.logsumexp, tolerance) << at;
  }
}

}  // namespace

class LlamaModelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(kModel)) GTEST_SKIP() << "no model at " << kModel;
  }
};

// Every golden position one token at a time (decode), the whole prompt at once (prefill),
// then the greedy continuation (on-device argmax).
// `exact`: logits and the greedy continuation as golden; else probabilities only.
void expect_golden(const LlamaLoadOptions& options, double tolerance = kLogitTolerance,
                   bool exact = true, const std::string& file = "golden.txt") {
  auto golden = read_golden(file);
  ASSERT_FALSE(golden.empty()) << "tests/data/smollm2/" << file << " missing";
  LlamaModel model = LlamaModel::load(kModel, options);
  for (const auto& [name, g] : golden) {
    ASSERT_EQ(g.positions.size(), g.ids.size()) << name;
    model.reset();
    for (size_t p = 0; p < g.ids.size(); ++p) {
      auto logits = model.forward(std::span(&g.ids[p], 1));
      expect_position(logits, g.positions[p], name + " decode position " + std::to_string(p),
                      tolerance, !exact, 0.75);
    }
    model.reset();
    auto logits = model.forward(g.ids);
    expect_position(logits, g.positions.back(), name + " prefill", tolerance, !exact, 0.75);
    if (!exact) continue;
    std::vector<int32_t> generated;
    for (size_t i = 0; i < g.greedy.size(); ++i) {
      generated.push_back(model.greedy_token());
      model.forward(std::span(&generated.back(), 1));
    }
    EXPECT_EQ(generated, g.greedy) << name;
  }
}

// fuse_qkv_cache_write folds each layer's two KV-cache writes into its fused q/k/v node: a
// decode step runs two kernels a layer fewer, and prefill then decode steps give the logits of
// the model compiled without the pass, to the bit (the CPU kernel writes the same values).
TEST_F(LlamaModelTest, CacheWritesInTheQkvNodeChangeNoLogit) {
  LlamaLoadOptions fused_options, plain_options;
  fused_options.context = plain_options.context = 64;
  plain_options.disabled_passes = {"fuse_qkv_cache_write"};
  LlamaModel fused = LlamaModel::load(kModel, fused_options);
  LlamaModel plain = LlamaModel::load(kModel, plain_options);
  const std::vector<int32_t> prompt{1, 504, 3458, 282, 4649, 314};
  auto a = fused.forward(prompt);
  auto b = plain.forward(prompt);
  EXPECT_TRUE(std::equal(a.begin(), a.end(), b.begin(), b.end())) << "prefill";
  for (int step = 0; step < 6; ++step) {
    const int32_t token = fused.greedy_token();
    ASSERT_EQ(token, plain.greedy_token()) << "step " << step;
    auto x = fused.forward(std::span(&token, 1));
    auto y = plain.forward(std::span(&token, 1));
    ASSERT_TRUE(std::equal(x.begin(), x.end(), y.begin(), y.end())) << "decode step " << step;
    EXPECT_EQ(fused.decode_stats().kernels + 2 * size_t(fused.config().layers),
              plain.decode_stats().kernels)
        << "decode step " << step;
  }
}

TEST_F(LlamaModelTest, DenseWeightsMatchGoldenLogits) {
  LlamaLoadOptions options;
  options.context = 64;
  options.quantized = false;
  expect_golden(options);
  LlamaModel model = LlamaModel::load(kModel, options);
  EXPECT_EQ(model.quantized_weights(), 0);
}

// The weights stay in their Q4_1 / Q8_0 blocks (quantized_matmul, the embedding gathered as
// blocks): with exact float products the logits are the dense ones.
TEST_F(LlamaModelTest, QuantizedWeightsWithFloatProductsMatchGoldenLogits) {
  LlamaLoadOptions options;
  options.context = 64;
  options.int8_activations = false;
  expect_golden(options);
  LlamaModel model = LlamaModel::load(kModel, options);
  EXPECT_EQ(model.quantized_weights(), 211);  // 30 layers x 7 projections + the embedding
}

// Prefill's attention in f16 (what CUDA does by default for an f32 model): q and the caches
// are rounded to f16 for attention only, the caches keep f32 and decode is unchanged.
TEST_F(LlamaModelTest, F16PrefillAttentionStaysNearGoldenLogits) {
  LlamaLoadOptions options;
  options.context = 64;
  options.int8_activations = false;
  options.prefill_attention_dtype = DType::f16;
  LlamaModel model = LlamaModel::load(kModel, options);
  for (const auto& [name, g] : read_golden()) {
    model.reset();
    expect_position(model.forward(g.ids), g.positions.back(), name + " prefill",
                    kF16AttentionTolerance);
  }
  options.prefill_attention_dtype = DType::i32;
  EXPECT_THROW(LlamaModel::load(kModel, options), Error);
}

TEST_F(LlamaModelTest, RefusesTokensOutsideTheVocabularyAndAFullContext) {
  LlamaLoadOptions options;
  options.context = 4;
  LlamaModel model = LlamaModel::load(kModel, options);
  std::vector<int32_t> bad{int32_t(model.config().vocab)};
  EXPECT_THROW(model.forward(bad), Error);
  std::vector<int32_t> five{1, 2, 3, 4, 5};
  EXPECT_THROW(model.forward(five), Error);
  EXPECT_EQ(model.position(), 0);
}

// The default CPU path rounds each activation row to int8 per block of 32 before integer dot
// products (as llama.cpp does for Q4_1 x Q8_1). On this model that noise is large: log
// probabilities of the top five move by up to 0.9 from the float golden (0.40 for likely
// tokens, 0.9 for one of probability 2e-4; measured 2026-12-01), and a NumPy forward rounding
// the same way (make_golden.py --int8-activations) lands as far away in another direction,
// because a rounding step flips wherever float order differs and one step in a block holding
// an outlier is a large change. In probability the top five move by up to 0.049 (measured
// 2026-12-01 with the tiled AVX2 kernel, 2 threads); the test allows twice that, 0.1, and checks
// the argmax wherever the golden top-two margin exceeds 1.5 in logits.
TEST_F(LlamaModelTest, QuantizedWeightsWithInt8ActivationsStayNearGoldenProbabilities) {
  LlamaLoadOptions options;
  options.context = 64;
  expect_golden(options, 0.1, false);
}

}  // namespace loom::models
