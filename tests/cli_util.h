// Runs the built `loom` program from a test and returns its exit status and output.
#pragma once

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <string>

namespace loom::testing {

// Runs `loom <args>` through the shell; `output` gets what the command line sends to the pipe.
inline int run_shell(const std::string& args, std::string* output) {
  std::string cmd = std::string(LOOM_CLI_PATH) + " " + args;
  FILE* pipe = popen(cmd.c_str(), "r");
  if (!pipe) return -1;
  std::array<char, 4096> buf;
  output->clear();
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), pipe)) > 0) output->append(buf.data(), n);
  int status = pclose(pipe);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// Runs `loom <args>` with standard output and error both in `output`.
inline int run_cli(const std::string& args, std::string* output) {
  return run_shell(args + " 2>&1", output);
}

}  // namespace loom::testing
