// The pass manager: runs the passes of src/passes/ in order on a program, skipping those
// CompileOptions::disabled_passes names, and keeps the graph's text after each when asked.
// A pass is named after its file (src/passes/<name>.cpp).
#pragma once

#include <vector>

#include "ir/node.h"
#include "loom/executable.h"

namespace loom::compiler {

// Throws loom::Error(value) naming the known passes when `options` disables an unknown one.
void check_pass_names(const CompileOptions& options);
// Runs the enabled passes; appends to `dumps` when options.keep_pass_dumps.
void run_passes(ir::Program& program, const CompileOptions& options, std::vector<PassDump>& dumps);

}  // namespace loom::compiler
