// The PEFT adapter readers (models/lora_config.h, models/lora_weights.h): the committed
// adapters of tests/data/lora read as make_lora.py wrote them, a table of bad configs and bad
// weight files each refused with a loom::Error naming the problem, and seeded random
// mutations of both files that must read or throw loom::Error, never crash.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>

#include "io/safetensors_writer.h"
#include "loom/error.h"
#include "models/lora_weights.h"
#include "test_util.h"

namespace loom::models {
namespace {

using loom::testing::error_kind;
using nlohmann::ordered_json;

const std::string kData = std::string(LOOM_TEST_DATA_DIR) + "/lora/";

// The tiny model of make_lora.py: 2 layers, D 64, 4 heads of 16 (2 for k and v), F 96.
LlamaConfig tiny_model() {
  LlamaConfig c;
  c.architecture = "llama";
  c.layers = 2;
  c.dim = 64;
  c.ffn_dim = 96;
  c.heads = 4;
  c.kv_heads = 2;
  c.head_dim = 16;
  c.vocab = 268;
  return c;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<std::byte> bytes_of(const std::string& s) {
  const auto* p = reinterpret_cast<const std::byte*>(s.data());
  return {p, p + s.size()};
}

TEST(LoraConfig, ReadsTheCommittedAdapters) {
  LoraConfig a = LoraConfig::read(kData + "adapter_a/adapter_config.json");
  EXPECT_EQ(a.rank, 4);
  EXPECT_EQ(a.alpha, 8);
  EXPECT_FALSE(a.rslora);
  EXPECT_DOUBLE_EQ(a.scaling, 2.0);
  EXPECT_EQ(a.target_modules.size(), 7u);
  LoraConfig b = LoraConfig::read(kData + "adapter_b/adapter_config.json");
  EXPECT_TRUE(b.rslora);
  EXPECT_DOUBLE_EQ(b.scaling, 4 / std::sqrt(2.0));
  LoraConfig c = LoraConfig::read(kData + "adapter_c/adapter_config.json");
  EXPECT_EQ(c.target_modules, (std::vector<std::string>{"q_proj", "v_proj"}));
  EXPECT_EQ(gguf_module_name("o_proj"), "attn_output");
  EXPECT_EQ(gguf_module_name("down_proj"), "ffn_down");
  EXPECT_EQ(gguf_module_name("lm_head"), "");
}

TEST(LoraConfig, DefaultsAlphaToEight) {
  LoraConfig c = LoraConfig::parse(R"({"r": 16, "target_modules": ["q_proj", "q_proj"]})", "t");
  EXPECT_EQ(c.alpha, 8);
  EXPECT_DOUBLE_EQ(c.scaling, 0.5);
  EXPECT_EQ(c.target_modules, (std::vector<std::string>{"q_proj"}));  // duplicates dropped
}

TEST(LoraConfig, RefusesBadConfigs) {
  struct Case {
    const char* json;
    ErrorKind kind;
    const char* message;
  };
  const Case cases[] = {
      {"", ErrorKind::io, "not valid JSON"},
      {"[1]", ErrorKind::io, "not a JSON object"},
      {R"({"target_modules": ["q_proj"]})", ErrorKind::io, "\"r\" (the rank) is missing"},
      {R"({"r": "8", "target_modules": ["q_proj"]})", ErrorKind::io, "\"r\" must be an integer"},
      {R"({"r": 0, "target_modules": ["q_proj"]})", ErrorKind::io, "not in 1..65536"},
      {R"({"r": -3, "target_modules": ["q_proj"]})", ErrorKind::io, "not in 1..65536"},
      {R"({"r": 99999999999999999999, "target_modules": ["q_proj"]})", ErrorKind::io, "r"},
      {R"({"r": 4.5, "target_modules": ["q_proj"]})", ErrorKind::io, "must be an integer"},
      {R"({"r": 4, "lora_alpha": "x", "target_modules": ["q_proj"]})", ErrorKind::io,
       "\"lora_alpha\" must be a number"},
      {R"({"r": 4, "use_rslora": 1, "target_modules": ["q_proj"]})", ErrorKind::io,
       "\"use_rslora\" must be true or false"},
      {R"({"r": 4})", ErrorKind::io, "\"target_modules\" is missing"},
      {R"({"r": 4, "target_modules": []})", ErrorKind::io, "non-empty list"},
      {R"({"r": 4, "target_modules": [3]})", ErrorKind::io, "not a module name"},
      {R"({"r": 4, "target_modules": {"q_proj": 1}})", ErrorKind::io, "non-empty list"},
      {R"({"r": 4, "target_modules": "q_proj|v_proj"})", ErrorKind::unsupported, "pattern"},
      {R"({"r": 4, "target_modules": ["lm_head"]})", ErrorKind::unsupported, "\"lm_head\""},
      {R"({"r": 4, "peft_type": "IA3", "target_modules": ["q_proj"]})", ErrorKind::unsupported,
       "IA3"},
      {R"({"r": 4, "use_dora": true, "target_modules": ["q_proj"]})", ErrorKind::unsupported,
       "DoRA"},
      {R"({"r": 4, "bias": "all", "target_modules": ["q_proj"]})", ErrorKind::unsupported, "bias"},
      {R"({"r": 4, "fan_in_fan_out": true, "target_modules": ["q_proj"]})", ErrorKind::unsupported,
       "fan_in_fan_out"},
      {R"({"r": 4, "rank_pattern": {"q_proj": 8}, "target_modules": ["q_proj"]})",
       ErrorKind::unsupported, "rank_pattern"},
      {R"({"r": 4, "layers_to_transform": [0], "target_modules": ["q_proj"]})",
       ErrorKind::unsupported, "layers_to_transform"},
      {R"({"r": 4, "modules_to_save": ["lm_head"], "target_modules": ["q_proj"]})",
       ErrorKind::unsupported, "modules_to_save"},
      {R"({"r": 4, "target_modules": [[[[[[[[[[[["q_proj"]]]]]]]]]]]]})", ErrorKind::io,
       "nested too deeply"},
  };
  for (const auto& c : cases) {
    std::string message;
    EXPECT_EQ(error_kind([&] { LoraConfig::parse(c.json, "cfg.json"); }, &message), c.kind)
        << c.json << " -> " << message;
    EXPECT_NE(message.find(c.message), std::string::npos) << c.json << " -> " << message;
    EXPECT_EQ(message.rfind("cfg.json: ", 0), 0u) << message;
  }
  EXPECT_EQ(error_kind([] { LoraConfig::read(kData + "no_such/adapter_config.json"); }),
            ErrorKind::io);
}

TEST(LoraWeights, ReadsTheCommittedAdaptersInTheGgufLayout) {
  const LlamaConfig model = tiny_model();
  LoraAdapter a = LoraAdapter::read(kData + "adapter_a", model);
  ASSERT_EQ(a.pairs.size(), 14u);
  const LoraPair& q = a.pairs.at("blk.1.attn_q");
  EXPECT_EQ(q.rank, 4);
  EXPECT_EQ(q.in, 64);
  EXPECT_EQ(q.out, 64);
  EXPECT_EQ(a.pairs.at("blk.0.attn_k").out, 32);
  EXPECT_EQ(a.pairs.at("blk.0.ffn_down").in, 96);
  // The file's rows of B, Hugging Face's [heads, 2, hd/2], are now [heads, hd/2, 2]: GGUF row
  // h*16 + 2i + j holds the file's row h*16 + 8j + i.
  auto file = io::SafetensorsFile::open(kData + "adapter_a/adapter_model.safetensors");
  const auto* t =
      file.find_tensor("base_model.model.model.layers.1.self_attn.q_proj.lora_B.weight");
  ASSERT_NE(t, nullptr);
  std::vector<float> hf(size_t(t->numel));
  std::memcpy(hf.data(), file.tensor_bytes(*t).data(), hf.size() * 4);
  for (int64_t h = 0; h < 4; ++h)
    for (int64_t i = 0; i < 8; ++i)
      for (int64_t j = 0; j < 2; ++j)
        for (int64_t k = 0; k < 4; ++k)
          ASSERT_EQ(q.b[size_t((h * 16 + 2 * i + j) * 4 + k)],
                    hf[size_t((h * 16 + 8 * j + i) * 4 + k)]);
  // v is not rotated: its rows stay as they are.
  const auto* v =
      file.find_tensor("base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight");
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(0, std::memcmp(a.pairs.at("blk.0.attn_v").b.data(), file.tensor_bytes(*v).data(),
                           file.tensor_bytes(*v).size()));

  LoraAdapter b = LoraAdapter::read(kData + "adapter_b", model);  // F16 in the file
  EXPECT_EQ(b.pairs.at("blk.0.ffn_up").a.size(), 2u * 64);
  LoraAdapter c = LoraAdapter::read(kData + "adapter_c", model);
  EXPECT_EQ(c.pairs.size(), 4u);
  EXPECT_TRUE(c.pairs.count("blk.1.attn_v"));
  // Qwen2-style models keep Hugging Face's halves: no permutation.
  LlamaConfig halves = model;
  halves.rope_interleaved = false;
  EXPECT_EQ(LoraAdapter::read(kData + "adapter_a", halves).pairs.at("blk.1.attn_q").b, hf);
}

// A valid one-layer adapter on q_proj of rank 2 for `tiny_model()` with one layer.
std::vector<test::SafetensorsEntry> q_entries(const char* dtype = "F32") {
  const int64_t size = std::string(dtype) == "F32" ? 4 : 2;
  auto zeros = [&](int64_t n) { return std::vector<std::byte>(size_t(n * size)); };
  const std::string p = "base_model.model.model.layers.0.self_attn.q_proj.";
  return {{p + "lora_A.weight", dtype, {2, 64}, zeros(128)},
          {p + "lora_B.weight", dtype, {64, 2}, zeros(128)}};
}

TEST(LoraWeights, RefusesBadWeightFiles) {
  LlamaConfig model = tiny_model();
  model.layers = 1;
  const LoraConfig config = LoraConfig::parse(R"({"r": 2, "target_modules": ["q_proj"]})", "c");
  auto read = [&](const std::vector<test::SafetensorsEntry>& entries) {
    auto file = io::SafetensorsFile::from_bytes(test::make_safetensors(entries), "w.safetensors");
    return LoraAdapter::from_files(config, file, model);
  };
  EXPECT_EQ(read(q_entries()).pairs.size(), 1u);
  EXPECT_EQ(read(q_entries("BF16")).pairs.at("blk.0.attn_q").a.size(), 128u);

  struct Case {
    std::function<void(std::vector<test::SafetensorsEntry>&)> edit;
    const char* message;
  };
  const std::string p = "base_model.model.model.layers.";
  const Case cases[] = {
      {[](auto& e) { e.pop_back(); }, "lora_B.weight' is missing"},
      {[](auto& e) { e.erase(e.begin()); }, "lora_A.weight' is missing"},
      {[](auto& e) {
         e[0].shape = {3, 64};
         e[0].data.resize(3 * 64 * 4);
       },
       "is [3, 64], expected [2, 64] (rank 2)"},
      {[](auto& e) {
         e[1].shape = {2, 64};
       },
       "expected [64, 2]"},
      {[](auto& e) { e[0].dtype = "I32"; }, "is I32; LoRA weights must be F32, F16 or BF16"},
      {[&](auto& e) { e[0].name = p + "1.self_attn.q_proj.lora_A.weight"; }, "is for layer 1"},
      {[&](auto& e) { e[0].name = p + "0.mlp.q_proj.lora_A.weight"; }, "is not a LoRA weight"},
      {[&](auto& e) { e[0].name = p + "0.self_attn.q_proj.lora_A.default.weight"; },
       "is not a LoRA weight"},
      {[&](auto& e) { e[0].name = "model.layers.0.self_attn.q_proj.lora_A.weight"; },
       "is not a LoRA weight"},
      {[&](auto& e) { e[0].name = p + "x.self_attn.q_proj.lora_A.weight"; },
       "is not a LoRA weight"},
      {[&](auto& e) {
         e.push_back(
             {p + "0.self_attn.v_proj.lora_A.weight", "F32", {2, 64}, std::vector<std::byte>(512)});
       },
       "which adapter_config.json does not target"},
      {[&](auto& e) {
         e.push_back({"base_model.model.lm_head.weight", "F32", {1}, std::vector<std::byte>(4)});
       },
       "is not a LoRA weight"},
  };
  for (const auto& c : cases) {
    auto entries = q_entries();
    c.edit(entries);
    std::string message;
    EXPECT_EQ(error_kind([&] { read(entries); }, &message), ErrorKind::io) << message;
    EXPECT_NE(message.find(c.message), std::string::npos) << message;
    EXPECT_NE(message.find("w.safetensors"), std::string::npos) << message;
  }
  std::string message;
  EXPECT_EQ(error_kind([&] { LoraAdapter::read(kData + "model_f32.gguf", model); }, &message),
            ErrorKind::io);
  EXPECT_NE(message.find("not a directory"), std::string::npos) << message;
  EXPECT_EQ(error_kind([&] { LoraAdapter::read(kData, model); }, &message), ErrorKind::io);
}

// Random mutations of the committed adapter_c's two files: each must read or throw
// loom::Error (io or unsupported), never anything else. LOOM_FUZZ_SEED replays a seed,
// LOOM_FUZZ_ITERATIONS runs more.
TEST(LoraWeights, MutatedFilesReadOrThrowLoomError) {
  const char* seed_env = std::getenv("LOOM_FUZZ_SEED");
  const char* iterations_env = std::getenv("LOOM_FUZZ_ITERATIONS");
  const uint64_t seed = seed_env ? std::strtoull(seed_env, nullptr, 10) : std::random_device{}();
  const int iterations = iterations_env ? std::atoi(iterations_env) : 1500;
  std::printf("LOOM_FUZZ_SEED=%llu\n", static_cast<unsigned long long>(seed));
  std::mt19937_64 rng(seed);
  const LlamaConfig model = tiny_model();
  const std::string config_text = slurp(kData + "adapter_c/adapter_config.json");
  const std::string weights = slurp(kData + "adapter_c/adapter_model.safetensors");
  const char tokens[] = "{}[]\",:0123456789-.eEtrufalsn \\";
  int opened = 0;
  for (int it = 0; it < iterations; ++it) {
    std::string c = config_text, w = weights;
    std::string& target = it % 2 ? c : w;
    const int edits = 1 + int(rng() % 4);
    for (int e = 0; e < edits && !target.empty(); ++e) {
      const size_t at = rng() % target.size();
      switch (rng() % 5) {
        case 0:  // flip a bit
          target[at] = char(target[at] ^ (1 << (rng() % 8)));
          break;
        case 1:  // a JSON-ish byte
          target[at] = tokens[rng() % (sizeof(tokens) - 1)];
          break;
        case 2:  // truncate
          target.resize(at);
          break;
        case 3:  // delete a run
          target.erase(at, 1 + rng() % 16);
          break;
        default:  // insert a JSON-ish byte
          target.insert(target.begin() + long(at), tokens[rng() % (sizeof(tokens) - 1)]);
      }
    }
    try {
      LoraConfig config = LoraConfig::parse(c, "mutant.json");
      auto file = io::SafetensorsFile::from_bytes(bytes_of(w), "mutant.safetensors");
      LoraAdapter a = LoraAdapter::from_files(config, file, model);
      for (const auto& [name, pair] : a.pairs) {
        ASSERT_EQ(pair.a.size(), size_t(pair.rank * pair.in)) << name;
        ASSERT_EQ(pair.b.size(), size_t(pair.out * pair.rank)) << name;
      }
      ++opened;
    } catch (const Error& e) {
      ASSERT_TRUE(e.kind() == ErrorKind::io || e.kind() == ErrorKind::unsupported)
          << "seed " << seed << " iteration " << it << ": " << e.what();
    }
  }
  std::printf("%d of %d mutants read\n", opened, iterations);
}

}  // namespace
}  // namespace loom::models
