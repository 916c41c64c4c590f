// Packages: an executable saved to one file (the graph after the passes, its plans with the
// kernel and tactic of every node and the memory plan, and the weights) and loaded again
// without running the passes or timing tactics. The format is docs/package-format.md.
#pragma once

#include <string>
#include <vector>

#include "loom/executable.h"

namespace loom {

// The current package format version (docs/package-format.md); version 1 packages (every
// weight embedded) still load.
inline constexpr uint32_t kPackageFormatVersion = 2;

struct SaveOptions {
  // GGUF or safetensors files whose tensors the package may reference instead of holding: a
  // variable or constant whose bytes equal one of their tensors' is saved as (file, offset),
  // and the file by path, size and XXH64 checksum, checked when the package loads. A package
  // loaded from references adds the files it was loaded from.
  std::vector<std::string> weight_files;
  // Hold every weight in the package (a self-contained file, as format version 1 did).
  bool embed_weights = false;
  // Store the files' absolute paths; by default paths are relative to the package's
  // directory, so the package and its weights can move together.
  bool absolute_paths = false;
};

// Writes `exe` to `path` (through a temporary file renamed over it). Variables are saved with
// their current values in the executable's store; weights found in `options.weight_files`
// are referenced, the rest embedded. Throws loom::Error(io) when writing fails or a weight
// file cannot be read.
void save(const Executable& exe, const std::string& path, const SaveOptions& options = {});

// The files a package references (as stored: relative to its directory, or absolute), read
// from its table without opening them; empty for a package that embeds its weights.
std::vector<std::string> referenced_files(const std::string& path);

// Loads a package for `device`. From `options` only the run-time fields count (cuda_graphs,
// time_tactics, tactic_cache, variables, max_cached_plans, plan_cache_bytes); the graph
// fields (outputs, disabled_passes, keep_pass_dumps, plan_for) must be left empty, since the
// package fixes them. Each saved plan is made again with the saved kernel and tactic per
// node, so nothing is timed; a package from another device identity or Loom version has its
// tactics re-chosen (timed as at compile), and Executable::package_note() says so.
// A truncated, corrupted or hostile file throws loom::Error(io) naming what is wrong, as does
// a referenced weight file that is missing or whose size or checksum differs.
Executable load(const std::string& path, Device device = Device::cpu(),
                CompileOptions options = {});

// A graph as built, with the outputs to compile, saved for later compilation (`loom compile
// GRAPH -o PACKAGE`, or load_graph then compile). Same format, flagged as a graph.
void save_graph(const Graph& graph, const std::vector<Tensor>& outputs, const std::string& path);

struct SavedGraph {
  Graph graph;
  std::vector<Tensor> outputs;
};
// Reads a saved graph, or the graph after the passes of a compiled package.
SavedGraph load_graph(const std::string& path);

// Whether `path` holds a compiled package (false: a saved graph); loom::Error(io) when it is
// neither.
bool is_compiled_package(const std::string& path);

}  // namespace loom
