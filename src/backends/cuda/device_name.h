// The GPU's name, for tactic cache keys: a choice timed on one GPU model is not reused on
// another.
#pragma once

#include <string>

namespace loom::cuda {

// e.g. "NVIDIA H200"; throws loom::Error(device) when the query fails.
std::string device_name(int index);

}  // namespace loom::cuda
