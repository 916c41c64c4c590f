// Where the tokenizer tests find their golden files and the bundled model.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

namespace loom::models::testing {

// The repository root: $LOOM_SOURCE_DIR, or the first folder above the test program (or the
// working directory) that holds tests/data/tokenizer.
inline std::filesystem::path source_root() {
  namespace fs = std::filesystem;
  if (const char* dir = std::getenv("LOOM_SOURCE_DIR")) return dir;
  std::error_code ec;
  for (fs::path start : {fs::read_symlink("/proc/self/exe", ec), fs::current_path()})
    for (fs::path p = start; !p.empty() && p != p.root_path(); p = p.parent_path())
      if (fs::exists(p / "tests" / "data" / "tokenizer" / "texts.json")) return p;
  throw std::runtime_error("cannot find the Loom sources (set LOOM_SOURCE_DIR)");
}

inline std::filesystem::path tokenizer_data_dir() {
  return source_root() / "tests" / "data" / "tokenizer";
}

inline nlohmann::json read_json(const std::string& name) {
  std::ifstream in(tokenizer_data_dir() / name);
  if (!in) throw std::runtime_error("cannot open " + (tokenizer_data_dir() / name).string());
  return nlohmann::json::parse(in);
}

// The bundled SmolLM2 GGUF (scripts/fetch_model.sh), or "" when it is not there.
inline std::string smollm2_path() {
  const char* dir = std::getenv("LOOM_MODELS_DIR");
  std::filesystem::path models = dir ? std::filesystem::path(dir) : source_root() / "models";
  auto path = models / "SmolLM2-135M-Instruct.Q4_1.gguf";
  return std::filesystem::exists(path) ? path.string() : std::string();
}

}  // namespace loom::models::testing
