// `loom inspect`: the tensor table and metadata of the fixtures, its JSON, and a clear error
// with a non-zero exit on bad files.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli_util.h"
#include "io/gguf_writer.h"
#include "io/io_test_util.h"

namespace loom::test {
namespace {

int run_loom(const std::string& args, std::string* out, bool with_stderr = true) {
  return testing::run_shell(args + (with_stderr ? " 2>&1" : " 2>/dev/null"), out);
}

const std::string kData = LOOM_TEST_DATA_DIR;

TEST(InspectCli, PrintsGgufMetadataAndTensors) {
  std::string out;
  ASSERT_EQ(run_loom("inspect " + kData + "/small.gguf", &out), 0) << out;
  EXPECT_NE(out.find("GGUF version 3"), std::string::npos) << out;
  EXPECT_NE(out.find("test.u32 (uint32) = 4000000000"), std::string::npos) << out;
  EXPECT_NE(out.find("test.strings (array[string; 3]) = [\"a\", \"\", \"ccc\"]"), std::string::npos)
      << out;
  EXPECT_NE(out.find("q4_k"), std::string::npos) << out;
  EXPECT_NE(out.find("Q4_K"), std::string::npos) << out;
  ASSERT_EQ(run_loom("inspect --max-array 1 " + kData + "/small.gguf", &out), 0) << out;
  EXPECT_NE(out.find("[\"a\", ... 2 more]"), std::string::npos) << out;
}

TEST(InspectCli, JsonHoldsEverything) {
  std::string out;
  ASSERT_EQ(run_loom("inspect --json " + kData + "/small.gguf", &out, false), 0) << out;
  auto j = nlohmann::json::parse(out);
  EXPECT_EQ(j["format"], "gguf");
  EXPECT_EQ(j["metadata"]["test.u32"]["type"], "uint32");
  EXPECT_EQ(j["metadata"]["test.u32"]["value"], 4000000000u);
  EXPECT_EQ(j["metadata"]["test.nested"]["element_type"], "array");
  EXPECT_EQ(j["metadata"]["test.nested"]["value"], nlohmann::json::parse("[[1, 2], [3]]"));
  ASSERT_EQ(j["tensors"].size(), 4u);
  EXPECT_EQ(j["tensors"][2]["name"], "q8_0");
  EXPECT_EQ(j["tensors"][2]["type"], "Q8_0");
  EXPECT_EQ(j["tensors"][2]["ne"], nlohmann::json::parse("[32, 2]"));
  EXPECT_EQ(j["tensors"][2]["shape"], nlohmann::json::parse("[2, 32]"));
  EXPECT_EQ(j["tensors"][2]["file_offset"], 640);
  ASSERT_EQ(run_loom("inspect --json " + kData + "/small.safetensors", &out, false), 0) << out;
  j = nlohmann::json::parse(out);
  EXPECT_EQ(j["tensors"][1]["dtype"], "I32");
  EXPECT_EQ(j["metadata"]["made_by"], "tests/data/make_io_fixtures.py");
}

TEST(InspectCli, BadFilesExitNonZeroWithTheReason) {
  ScratchDir dir;
  std::string out;
  EXPECT_EQ(run_loom("inspect " + dir.file("absent.gguf"), &out), 1);
  EXPECT_NE(out.find("cannot open"), std::string::npos) << out;
  GgufWriter w;
  w.add("general.name", GgufWriter::string("x"));
  auto bytes = w.bytes();
  // Header (24) + key (8 + 12) + type (4) + length (8) + "x" (1) = 57 bytes, then padding.
  bytes.resize(56);
  write_file(dir.file("cut.gguf"), bytes);
  EXPECT_EQ(run_loom("inspect --json " + dir.file("cut.gguf"), &out), 1);
  EXPECT_NE(out.find("loom inspect: io error: " + dir.file("cut.gguf") +
                     ": truncated or corrupt: string value of 'general.name'"),
            std::string::npos)
      << out;
  write_file(dir.file("junk.bin"), std::vector<std::byte>(64, std::byte{'x'}));
  EXPECT_EQ(run_loom("inspect " + dir.file("junk.bin"), &out), 1);
  EXPECT_NE(out.find("is not safetensors either"), std::string::npos) << out;
  EXPECT_NE(run_loom("inspect", &out), 0);  // the path is required
}

}  // namespace
}  // namespace loom::test
