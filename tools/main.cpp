// The `loom` command-line program.
#include <cstdio>

#include "commands.h"
#include "loom/loom.h"

int main(int argc, char** argv) {
  CLI::App app{"Loom: compile tensor graphs once, run them fast on NVIDIA GPUs and CPUs."};
  app.set_version_flag("--version", std::string("loom ") + loom::kVersion);
  app.require_subcommand(0, 1);
  loom::tools::add_demo_command(app);
  loom::tools::add_ops_command(app);
  loom::tools::add_inspect_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (app.get_subcommands().empty()) {
    std::fputs(app.help().c_str(), stdout);
    return 0;
  }
  return 0;
}
