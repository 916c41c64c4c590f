// The Llama graph on the real SmolLM2-135M-Instruct against golden logits from an independent
// NumPy implementation (tests/data/smollm2/make_golden.py). Skips when models/ has no model
// (scripts/fetch_model.sh fetches it; CI's set-up does).
#include "models/llama_model.h"

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

std::map<std::string, PromptGolden> read_golden() {
  std::ifstream in(std::string(LOOM_TEST_DATA_DIR) + "/smollm2/golden.txt");
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

void expect_position(std::span<const float> logits, const PositionGolden& g,
                     const std::string& at) {
  int64_t best = 0;
  for (size_t i = 1; i < logits.size(); ++i)
    if (logits[i] > logits[size_t(best)]) best = int64_t(i);
  EXPECT_EQ(best, g.top[0]) << at;
  for (size_t i = 0; i < g.top.size(); ++i)
    EXPECT_NEAR(logits[size_t(g.top[i])], g.top_logits[i], kLogitTolerance) << at << " top " << i;
  EXPECT_NEAR(logsumexp(logits), g.logsumexp, kLogitTolerance) << at;
}

}  // namespace

class LlamaModelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(kModel)) GTEST_SKIP() << "no model at " << kModel;
  }
};

TEST_F(LlamaModelTest, DecodeAndPrefillMatchGoldenLogits) {
  auto golden = read_golden();
  ASSERT_FALSE(golden.empty()) << "tests/data/smollm2/golden.txt missing";
  LlamaLoadOptions options;
  options.context = 64;
  LlamaModel model = LlamaModel::load(kModel, options);
  for (const auto& [name, g] : golden) {
    ASSERT_EQ(g.positions.size(), g.ids.size()) << name;
    // One token at a time through the decode executable: every position's logits.
    model.reset();
    for (size_t p = 0; p < g.ids.size(); ++p) {
      auto logits = model.forward(std::span(&g.ids[p], 1));
      expect_position(logits, g.positions[p], name + " decode position " + std::to_string(p));
    }
    // The whole prompt at once through the prefill executable.
    model.reset();
    auto logits = model.forward(g.ids);
    expect_position(logits, g.positions.back(), name + " prefill");
    // Greedy continuation, on-device argmax.
    std::vector<int32_t> generated;
    for (size_t i = 0; i < g.greedy.size(); ++i) {
      generated.push_back(model.greedy_token());
      model.forward(std::span(&generated.back(), 1));
    }
    EXPECT_EQ(generated, g.greedy) << name;
  }
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

}  // namespace loom::models
