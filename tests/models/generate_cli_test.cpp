// `loom generate` and `loom bench` with the bundled SmolLM2 (skipped when models/ has none):
// the chat answer, the speed lines, and clean failures for bad input.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <string>

#include "cli_util.h"

using loom::testing::run_cli;

namespace {

const std::string kModel = std::string(LOOM_MODELS_DIR) + "/SmolLM2-135M-Instruct.Q4_1.gguf";

class GenerateCli : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(kModel)) GTEST_SKIP() << "no model at " << kModel;
  }
};

}  // namespace

// Exact products give the golden path's answer; the default int8 activations shift close
// calls (tests/models/llama_model_test.cpp), so that path gets a question it answers plainly.
TEST_F(GenerateCli, GreedyChatAnswersParis) {
  std::string out;
  ASSERT_EQ(run_cli("generate --model " + kModel +
                        " --device cpu --context 128 --chat --temp 0 -n 16 --exact-matmul"
                        " --prompt 'What is the capital of France?'",
                    &out),
            0)
      << out;
  EXPECT_NE(out.find("Paris"), std::string::npos) << out;
  EXPECT_NE(out.find("decode"), std::string::npos) << out;
  EXPECT_NE(out.find("tok/s"), std::string::npos) << out;
  ASSERT_EQ(run_cli("generate --model " + kModel +
                        " --device cpu --context 128 --chat --temp 0 -n 16"
                        " --prompt 'Name the capital city of France.'",
                    &out),
            0)
      << out;
  EXPECT_NE(out.find("Paris"), std::string::npos) << out;
}

TEST_F(GenerateCli, SeededSamplingRepeats) {
  std::string a, b;
  const std::string args = "generate --model " + kModel +
                           " --device cpu --context 64 -q --temp 0.9 --seed 42 -n 8 -p 'Once upon'";
  ASSERT_EQ(run_cli(args, &a), 0) << a;
  ASSERT_EQ(run_cli(args, &b), 0) << b;
  EXPECT_EQ(a, b);
}

TEST_F(GenerateCli, BenchPrintsLlamaBenchRows) {
  std::string out;
  ASSERT_EQ(run_cli("bench --model " + kModel + " --device cpu -p 16 -n 4 -r 1", &out), 0) << out;
  EXPECT_NE(out.find("| pp16 |"), std::string::npos) << out;
  EXPECT_NE(out.find("| tg4 |"), std::string::npos) << out;
}

// -d fills the cache before each test, as llama-bench's -d; the rows say so.
TEST_F(GenerateCli, BenchAtDepth) {
  std::string out;
  ASSERT_EQ(run_cli("bench --model " + kModel + " --device cpu -p 4 -n 2 -r 1 -d 8", &out), 0)
      << out;
  EXPECT_NE(out.find("| pp4 @ d8 |"), std::string::npos) << out;
  EXPECT_NE(out.find("| tg2 @ d8 |"), std::string::npos) << out;
  EXPECT_NE(run_cli("bench --model " + kModel + " --device cpu -d -1", &out), 0) << out;
}

// --profile times a prefill (with -p) and a decode step node by node, each op's line naming
// its kernel; a one-token prompt has no prefill to profile.
TEST_F(GenerateCli, BenchProfilesPrefillAndDecode) {
  std::string out;
  ASSERT_EQ(run_cli("bench --model " + kModel + " --device cpu -p 8 -n 2 -r 1 --profile", &out), 0)
      << out;
  EXPECT_NE(out.find("profiled prefill of 8 tokens"), std::string::npos) << out;
  EXPECT_NE(out.find("profiled decode step"), std::string::npos) << out;
  EXPECT_NE(out.find("cpu.attention.flash"), std::string::npos) << out;
  ASSERT_EQ(run_cli("bench --model " + kModel + " --device cpu -p 1 -n 2 -r 1 --profile", &out), 0)
      << out;
  EXPECT_EQ(out.find("profiled prefill"), std::string::npos) << out;
  EXPECT_NE(out.find("profiled decode step"), std::string::npos) << out;
}

TEST(GenerateCliErrors, BadInputExitsNonZeroWithAMessage) {
  std::string out;
  EXPECT_NE(run_cli("generate --model /nonexistent.gguf -p hi", &out), 0);
  EXPECT_NE(out.find("nonexistent"), std::string::npos) << out;
  EXPECT_NE(run_cli("generate --model " + std::string(LOOM_CLI_PATH) + " -p hi", &out), 0);
  EXPECT_NE(out.find("loom:"), std::string::npos) << out;
  EXPECT_NE(run_cli("generate -n abc -p hi", &out), 0);
  EXPECT_NE(out.find("positive integer"), std::string::npos) << out;
  EXPECT_NE(run_cli("generate --top-p 2 -p hi", &out), 0);
  EXPECT_NE(run_cli("generate --device gpu -p hi --model " + kModel, &out), 0);
}

// --disable-pass takes pass names only: anything else is refused before a token is generated,
// with the list of passes, and a known pass turned off still generates.
TEST_F(GenerateCli, DisablePassRefusesUnknownNames) {
  std::string out;
  EXPECT_NE(
      run_cli("generate --model " + kModel + " --device cpu -n 2 -p hi --disable-pass no_such",
              &out),
      0);
  EXPECT_NE(out.find("unknown pass 'no_such'"), std::string::npos) << out;
  EXPECT_NE(out.find("fuse_qkv_rope"), std::string::npos) << out;
  EXPECT_NE(
      run_cli("bench --model " + kModel + " --device cpu -p 4 -n 2 -r 1 --disable-pass ''", &out),
      0);
  ASSERT_EQ(run_cli("generate --model " + kModel +
                        " --device cpu -n 2 -p hi --temp 0 --disable-pass fuse_qkv_rope",
                    &out),
            0)
      << out;
}
