// Loading a package from bytes in memory (loom::load maps the file and calls this; the
// fuzz test calls it directly).
#pragma once

#include <span>
#include <string>

#include "loom/executable.h"

namespace loom::package {

// `path` names the bytes in messages.
Executable load_bytes(std::span<const std::byte> bytes, const std::string& path, Device device,
                      CompileOptions options);

}  // namespace loom::package
