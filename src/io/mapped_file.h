// MappedFile: the read-only bytes of a file, memory-mapped so that a model's weights are read
// from the page cache instead of being copied. Readers (GGUF, safetensors) keep one and hand out
// spans into it. It can also own bytes already in memory, so that tests and fuzzers parse many
// small files without touching the disk.
//
// The readers check a file against its size when they open it; a file that another process
// truncates while it is mapped can still fault on access (SIGBUS), as with any mapping.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace loom::io {

class MappedFile {
 public:
  // Maps the whole file read-only. Throws loom::Error(io) naming the path when it cannot be
  // opened, is not a regular file, or cannot be mapped. An empty file gives an empty span.
  static MappedFile open(const std::string& path);
  // Owns `bytes`; `label` stands in for the path in error messages.
  static MappedFile from_bytes(std::vector<std::byte> bytes, std::string label);

  MappedFile() = default;
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  std::span<const std::byte> bytes() const { return {data_, size_}; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  void release();

  const std::byte* data_ = nullptr;
  size_t size_ = 0;
  bool mapped_ = false;           // data_ came from mmap and is unmapped on destruction
  std::vector<std::byte> owned_;  // bytes held in memory (from_bytes)
  std::string path_;
};

}  // namespace loom::io
