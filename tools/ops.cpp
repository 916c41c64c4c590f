// `loom ops`: lists the registered ops and the compiler's passes.
#include <fmt/format.h>

#include "commands.h"
#include "ir/op_registry.h"
#include "loom/loom.h"

namespace loom::tools {

void add_ops_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("ops", "List the registered ops and the compiler passes");
  cmd->callback([] {
    fmt::print("ops:");
    for (const auto& name : ir::OpRegistry::instance().names()) fmt::print(" {}", name);
    fmt::print("\npasses:");
    for (const auto& name : pass_names()) fmt::print(" {}", name);
    fmt::print("\ncuda: {}\n", cuda_available() ? "available" : "not available");
  });
}

}  // namespace loom::tools
