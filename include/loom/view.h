// The graph viewer: one self-contained HTML page (no network) showing an executable's graph
// as built and after each pass (when compiled with CompileOptions::keep_pass_dumps), as
// lowered (kernel and tactic per node), its arena, and its latest Executable::profile.
// See docs/viewer.md.
#pragma once

#include <string>

#include "loom/executable.h"

namespace loom {

std::string view_html(const Executable& exe, const std::string& title = "Loom graph");
// Writes view_html(exe, title) to `path`; loom::Error(io) when that fails.
void write_view(const Executable& exe, const std::string& path,
                const std::string& title = "Loom graph");

}  // namespace loom
