// `loom ops`: lists the registered ops and the compiler's passes; `loom ops NAME...` prints
// those ops' schemas (inputs, attributes with types and defaults, outputs); `--schemas`
// prints every op's.
#include <fmt/format.h>

#include "commands.h"
#include "loom/loom.h"
#include "loom/op_schema.h"

namespace loom::tools {

void add_ops_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("ops",
                                 "List the registered ops and the compiler passes, or "
                                 "print op schemas");
  static std::vector<std::string> names;
  static bool all = false;
  cmd->add_option("names", names, "Ops whose schemas to print");
  cmd->add_flag("--schemas", all, "Print the schema of every op");
  cmd->callback([] {
    if (all) names = op_names();
    if (!names.empty()) {
      for (const auto& name : names) {
        try {
          fmt::print("{}\n", op_schema(name).str());
        } catch (const Error& e) {
          fmt::print(stderr, "loom ops: {}\n", e.what());
          throw CLI::RuntimeError(1);
        }
      }
      return;
    }
    fmt::print("ops:");
    for (const auto& name : op_names()) fmt::print(" {}", name);
    fmt::print("\npasses:");
    for (const auto& name : pass_names()) fmt::print(" {}", name);
    fmt::print("\ncuda: {}\n", cuda_available() ? "available" : "not available");
  });
}

}  // namespace loom::tools
