// Graphs and executables as JSON, for the viewer (view_html.cpp) and the pass snapshots the
// pass manager keeps (CompileOptions::keep_pass_dumps).
#pragma once

#include <nlohmann/json.hpp>

#include "ir/node.h"
#include "loom/executable.h"

namespace loom::view {

// {"nodes": [{"id", "op", "role", "name", "attrs": {name: text}, "inputs": [[id, output]],
//   "types": ["f32[2, 3]"]}], "outputs": [[id, output]]}
nlohmann::json program_json(const ir::Program& program);

// Everything the viewer shows: stages (pass snapshots when kept, else the graph after the
// passes), the most recent plan (kernel, tactic, times, concrete types, arena buffers), the
// latest profile, and the device and package note.
nlohmann::json executable_json(const Executable& exe);

}  // namespace loom::view
