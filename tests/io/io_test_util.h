// Helpers for the file-reader tests: a scratch directory, writing bytes to a file, catching
// the loom::Error a bad file must give, and where the bundled model lives.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstddef>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "loom/error.h"

namespace loom::test {

// A fresh directory under the system's temp dir, removed with its contents at the end.
class ScratchDir {
 public:
  ScratchDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "loom_io_XXXXXX").string();
    if (!mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

inline void write_file(const std::string& path, const std::vector<std::byte>& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (!f) throw std::runtime_error("cannot write " + path);
}

// Runs `fn`, which must throw loom::Error(io); returns its message ("" and a test failure
// when it does not throw, or throws something else).
template <class Fn>
std::string io_error_of(Fn&& fn) {
  try {
    fn();
  } catch (const loom::Error& e) {
    EXPECT_EQ(e.kind(), loom::ErrorKind::io) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "expected loom::Error(io), nothing was thrown";
  return "";
}

// The bundled model (scripts/fetch_model.sh); "" when it has not been fetched.
inline std::string smollm2_path() {
  std::string path = std::string(LOOM_MODELS_DIR) + "/SmolLM2-135M-Instruct.Q4_1.gguf";
  return std::filesystem::exists(path) ? path : "";
}

}  // namespace loom::test
