// One function per subcommand; each adds itself to the app.
#pragma once

#include <CLI/CLI.hpp>

namespace loom::tools {

void add_demo_command(CLI::App& app);
void add_ops_command(CLI::App& app);
void add_generate_command(CLI::App& app);
void add_bench_command(CLI::App& app);
void add_inspect_command(CLI::App& app);
void add_package_commands(CLI::App& app);  // compile, view
void add_fft_filter_command(CLI::App& app);

}  // namespace loom::tools
