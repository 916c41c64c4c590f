// `loom generate --lora DIR [--lora-scale S] [--lora-merge]` on the tiny model and adapters of
// tests/data/lora: merged and unmerged give the same text, scale 0 gives the base model's,
// and bad flags or folders fail with a message.
#include <gtest/gtest.h>

#include <string>

#include "cli_util.h"

using loom::testing::run_cli;
using loom::testing::run_shell;

namespace {

const std::string kData = std::string(LOOM_TEST_DATA_DIR) + "/lora/";
const std::string kGenerate = "generate --model " + kData +
                              "model_f32.gguf --device cpu --context 64 -q --temp 0 -n 12"
                              " -p 'hello world'";

std::string text_of(const std::string& args) {
  std::string out;
  EXPECT_EQ(run_shell(kGenerate + " " + args, &out), 0) << args << ": " << out;
  return out;
}

}  // namespace

TEST(LoraCli, MergedAndUnmergedAgreeAndScaleZeroIsTheBase) {
  const std::string base = text_of("");
  const std::string unmerged = text_of("--lora " + kData + "adapter_a");
  EXPECT_EQ(text_of("--lora " + kData + "adapter_a --lora-merge"), unmerged);
  EXPECT_EQ(text_of("--lora " + kData + "adapter_a --lora-scale 0"), base);
  EXPECT_NE(unmerged.find("hello world"), std::string::npos) << unmerged;
}

TEST(LoraCli, BadFlagsAndFoldersFail) {
  std::string out;
  EXPECT_NE(run_cli(kGenerate + " --lora-merge", &out), 0);
  EXPECT_NE(out.find("need --lora DIR"), std::string::npos) << out;
  EXPECT_NE(run_cli(kGenerate + " --lora " + kData + "no_such_adapter", &out), 0);
  EXPECT_NE(run_cli(kGenerate + " --lora " + kData, &out), 0);
  EXPECT_NE(out.find("adapter_config.json"), std::string::npos) << out;
  EXPECT_EQ(out.find("terminate"), std::string::npos) << out;
}
