// The `loom` command-line program.
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <iostream>

#include "commands.h"
#include "loom/loom.h"

// Output that could not be written (a full disk, a closed file) makes the exit status
// non-zero: standard output is buffered, so its errors show only when it is flushed.
static int finish(int rc) {
  errno = 0;
  bool flush_failed = std::fflush(stdout) != 0;
  int flush_errno = errno;
  if (flush_failed || std::ferror(stdout) || !std::cout) {
    std::fprintf(stderr, "loom: cannot write to standard output%s%s\n",
                 flush_failed && flush_errno ? ": " : "",
                 flush_failed && flush_errno ? std::strerror(flush_errno) : "");
    return rc != 0 ? rc : 1;
  }
  return rc;
}

static int run(int argc, char** argv) {
  CLI::App app{"Loom: compile tensor graphs once, run them fast on NVIDIA GPUs and CPUs."};
  app.set_version_flag("--version", std::string("loom ") + loom::kVersion);
  app.require_subcommand(0, 1);
  loom::tools::add_demo_command(app);
  loom::tools::add_ops_command(app);
  loom::tools::add_generate_command(app);
  loom::tools::add_bench_command(app);
  loom::tools::add_inspect_command(app);
  loom::tools::add_package_commands(app);
  loom::tools::add_fft_filter_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (app.get_subcommands().empty()) std::fputs(app.help().c_str(), stdout);
  return 0;
}

int main(int argc, char** argv) {
  try {
    return finish(run(argc, argv));
  } catch (const std::exception& e) {
    // fmt::print throws when a write fails part-way (the buffer filled before exit).
    std::fprintf(stderr, "loom: %s\n", e.what());
    return 1;
  }
}
