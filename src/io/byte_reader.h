// ByteReader: a cursor over a file's bytes whose every read is checked against the end, for
// the file readers. A read past the end throws loom::Error(io) saying what was being read, at
// which offset, and how many bytes the file has.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>

namespace loom::io {

static_assert(std::endian::native == std::endian::little,
              "the file readers assume a little-endian host, as GGUF and safetensors files are");

class ByteReader {
 public:
  ByteReader(std::span<const std::byte> bytes, const std::string& path, size_t pos = 0)
      : bytes_(bytes), path_(path), pos_(pos) {}

  size_t pos() const { return pos_; }
  const std::string& path() const { return path_; }
  size_t size() const { return bytes_.size(); }
  size_t remaining() const { return pos_ <= bytes_.size() ? bytes_.size() - pos_ : 0; }

  // Throws unless `n` more bytes are there. `what` and `context` name the field.
  void need(uint64_t n, std::string_view what, std::string_view context = {}) const {
    if (n > remaining()) truncated(n, what, context);
  }
  template <class T>
  T read(std::string_view what, std::string_view context = {}) {
    static_assert(std::is_trivially_copyable_v<T>);
    need(sizeof(T), what, context);
    T value;
    std::memcpy(&value, bytes_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return value;
  }
  std::span<const std::byte> read_bytes(uint64_t n, std::string_view what,
                                        std::string_view context = {}) {
    need(n, what, context);
    auto out = bytes_.subspan(pos_, static_cast<size_t>(n));
    pos_ += static_cast<size_t>(n);
    return out;
  }
  void skip(uint64_t n, std::string_view what, std::string_view context = {}) {
    read_bytes(n, what, context);
  }

  [[noreturn]] void truncated(uint64_t n, std::string_view what, std::string_view context) const;

 private:
  std::span<const std::byte> bytes_;
  const std::string& path_;
  size_t pos_;
};

}  // namespace loom::io
