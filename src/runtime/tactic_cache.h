// The process-wide cache of kernel and tactic choices, keyed by what makes a measurement
// valid elsewhere: the device's kind, the op and its attributes, and the dtype, extents and
// alignment of every operand. It can be saved to a file and loaded back, so that a later
// process plans without timing anything.
#pragma once

#include <optional>
#include <span>
#include <string>

#include "backends/backend.h"

namespace loom::runtime {

struct TacticChoice {
  std::string kernel;  // Kernel::name
  std::string tactic;  // Tactic::name
  double ms = -1;      // measured time of one call
  int tried = 0;       // candidates timed
};

std::string tactic_key(const std::string& device_identity, const ir::Node& node,
                       std::span<const TensorView> inputs, std::span<const TensorView> outputs);

std::optional<TacticChoice> find_tactic(const std::string& key);
void remember_tactic(const std::string& key, const TacticChoice& choice);

// Merges a file written by save_tactic_cache into the cache (entries already there win).
// A missing file is not an error (the first run makes it); a malformed one is (io).
void load_tactic_cache(const std::string& path);
// Writes every entry (through a temporary file renamed over `path`).
void save_tactic_cache(const std::string& path);

// The path CompileOptions::tactic_cache names, else $LOOM_TACTIC_CACHE, else "".
std::string tactic_cache_path(const std::string& option);

}  // namespace loom::runtime
