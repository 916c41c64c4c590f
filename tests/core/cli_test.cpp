// The loom program: version, help, the demo, and bad flags (non-zero exit, no crash).
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <string>

#include "cli_util.h"

using loom::testing::run_cli;
using loom::testing::run_shell;

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

TEST(Cli, CountFlagsSayTheyWantAPositiveInteger) {
  std::string out;
  for (const char* bad : {"abc", "0", "-4", "2.5", "3x", "99999999999999999999", "2000000"}) {
    EXPECT_NE(run_cli(std::string("demo --batch ") + bad, &out), 0) << bad;
    EXPECT_NE(out.find("must be a positive integer"), std::string::npos) << bad << ": " << out;
    EXPECT_EQ(out.find("not in range"), std::string::npos) << out;
  }
  EXPECT_EQ(run_cli("demo --batch 1048576 --device tpu", &out), 1) << out;  // the bound is valid
}

TEST(Cli, FailedWritesToStandardOutputExitNonZero) {
  if (FILE* full = std::fopen("/dev/full", "w")) {
    std::fclose(full);
  } else {
    GTEST_SKIP() << "no /dev/full here";
  }
  // Standard error goes to the pipe, standard output to the full device.
  for (const char* args : {"ops", "--help", "--version", "demo --batch 2", "demo --passes"}) {
    std::string out;
    EXPECT_NE(run_shell(std::string(args) + " 2>&1 >/dev/full", &out), 0) << args;
    EXPECT_NE(out.find("loom: cannot write"), std::string::npos) << args << ": " << out;
  }
  std::string out;
  EXPECT_EQ(run_shell("ops 2>&1 >/dev/null", &out), 0) << out;
  EXPECT_EQ(out, "");
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
