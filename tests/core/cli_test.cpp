// The loom program: version, help, the demo, and bad flags (non-zero exit, no crash).
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <string>

static int run_cli(const std::string& args, std::string* output) {
  std::string cmd = std::string(LOOM_CLI_PATH) + " " + args + " 2>&1";
  FILE* pipe = popen(cmd.c_str(), "r");
  if (!pipe) return -1;
  std::array<char, 4096> buf;
  output->clear();
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), pipe)) > 0) output->append(buf.data(), n);
  int status = pclose(pipe);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST(Cli, VersionAndHelp) {
  std::string out;
  EXPECT_EQ(run_cli("--version", &out), 0);
  EXPECT_NE(out.find("loom 0."), std::string::npos) << out;
  EXPECT_EQ(run_cli("--help", &out), 0);
  EXPECT_NE(out.find("demo"), std::string::npos) << out;
}

TEST(Cli, DemoRuns) {
  std::string out;
  EXPECT_EQ(run_cli("demo --batch 2 --passes", &out), 0) << out;
  EXPECT_NE(out.find("row 1:"), std::string::npos) << out;
  EXPECT_NE(out.find("after constant_folding"), std::string::npos) << out;
}

TEST(Cli, BadFlagsExitNonZero) {
  std::string out;
  EXPECT_NE(run_cli("--no-such-flag", &out), 0);
  EXPECT_NE(run_cli("no-such-command", &out), 0);
  EXPECT_NE(run_cli("demo --batch", &out), 0);
  EXPECT_NE(run_cli("demo --batch zero", &out), 0);
  EXPECT_NE(run_cli("demo --batch -4", &out), 0);
  EXPECT_NE(run_cli("demo --device tpu", &out), 0);
  EXPECT_NE(out.find("unknown device"), std::string::npos) << out;
}

TEST(Cli, OpsPrintsSchemas) {
  std::string out;
  EXPECT_EQ(run_cli("ops", &out), 0) << out;
  EXPECT_NE(out.find("argmax"), std::string::npos) << out;
  EXPECT_EQ(run_cli("ops layer_norm", &out), 0) << out;
  EXPECT_NE(out.find("eps: float = 1e-05"), std::string::npos) << out;
  EXPECT_NE(out.find("weight?"), std::string::npos) << out;
  EXPECT_EQ(run_cli("ops --schemas", &out), 0) << out;
  EXPECT_NE(out.find("base: float = 10000"), std::string::npos) << out;
  EXPECT_NE(run_cli("ops no_such_op", &out), 0);
  EXPECT_NE(out.find("unknown op"), std::string::npos) << out;
}
