// The GPU's name, for tactic cache keys: a choice timed on one GPU model is not reused on
// another.
#pragma once

#include <string>

namespace loom::cuda {

// e.g. "NVIDIA H200"; throws loom::Error(device) when the query fails.
std::string device_name(int index);
// The CUDA driver's version (12080 for 12.8); throws loom::Error(device) when the query fails.
int driver_version();

}  // namespace loom::cuda
