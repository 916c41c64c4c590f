// GgufFile: a checked, memory-mapped reader of GGUF files (llama.cpp's model format, versions
// 2 and 3): the header, the metadata key/values, the tensor infos, and spans of tensor bytes.
//
// Every count, string length, offset, alignment and size is checked against the file before it
// is used, so a truncated, corrupted or hostile file gives loom::Error(ErrorKind::io) naming
// what is wrong (the key, the tensor, the byte offset), never a crash, an out-of-bounds read, an
// allocation larger than a small multiple of the file, or a hang. Values are checked when the
// file is opened and decoded when asked for.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "io/ggml_types.h"
#include "io/mapped_file.h"
#include "loom/shape.h"

namespace loom::io {

// GGUF's metadata value types (the numbers are what the file stores).
enum class GgufValueType : uint32_t {
  uint8 = 0,
  int8 = 1,
  uint16 = 2,
  int16 = 3,
  uint32 = 4,
  int32 = 5,
  float32 = 6,
  boolean = 7,
  string = 8,
  array = 9,
  uint64 = 10,
  int64 = 11,
  float64 = 12,
};
const char* gguf_value_type_name(GgufValueType type);  // "uint32", "array", ...

struct GgufTensorInfo {
  std::string name;
  GgmlType type;
  const GgmlTypeTraits* traits;  // the type's row of the table: name, id, block size, bytes
  // GGUF (ggml) order: ne[0] is the innermost, contiguous dimension. A [rows, cols] matrix in
  // row-major terms has ne = {cols, rows}.
  std::vector<int64_t> ne;
  // The same dims in Loom's row-major order (ne reversed): shape.back() is contiguous.
  Extents shape;
  uint64_t offset;       // from the start of the data section, as the file stores it
  uint64_t file_offset;  // from the start of the file
  uint64_t byte_size;    // numel / block_size * bytes_per_block
  int64_t numel;
};

// A metadata value decoded for display or generic use (loom inspect): scalars in one of the
// fields below by type, arrays as elements (possibly only the first few; see `count`).
struct GgufValue {
  GgufValueType type = GgufValueType::uint8;
  uint64_t u = 0;  // unsigned integer types
  int64_t i = 0;   // signed integer types
  double f = 0;    // float32, float64
  bool b = false;  // boolean
  std::string s;   // string (bytes as stored; GGUF says UTF-8 but nothing enforces it)
  GgufValueType element_type = GgufValueType::uint8;  // arrays
  uint64_t count = 0;                                 // arrays: elements in the file
  std::vector<GgufValue> elements;                    // arrays: the first min(count, limit)
};

class GgufFile {
 public:
  // Opens, maps and checks a GGUF file. Throws loom::Error(io) naming the path and the fault.
  static GgufFile open(const std::string& path);
  // Parses bytes held in memory; `label` names them in errors (tests, fuzzers).
  static GgufFile from_bytes(std::vector<std::byte> bytes, std::string label = "<memory>");

  uint32_t version() const { return version_; }
  const std::string& path() const { return file_.path(); }
  uint64_t file_size() const { return file_.size(); }
  uint64_t alignment() const { return alignment_; }      // general.alignment, default 32
  uint64_t data_offset() const { return data_offset_; }  // start of the tensor data section

  // Metadata. Getters throw loom::Error(io) naming the key when it is missing or of another
  // type. get_int accepts every GGUF integer width when the value fits in int64; get_float
  // accepts float32/float64 and integers; the array getters take the same per element.
  bool has(std::string_view key) const;
  std::vector<std::string> keys() const;  // in file order
  GgufValueType type(std::string_view key) const;
  GgufValueType array_type(std::string_view key) const;  // element type of an array value
  uint64_t array_size(std::string_view key) const;
  std::string get_string(std::string_view key) const;
  int64_t get_int(std::string_view key) const;
  double get_float(std::string_view key) const;
  bool get_bool(std::string_view key) const;
  std::vector<std::string> get_string_array(std::string_view key) const;
  std::vector<double> get_float_array(std::string_view key) const;
  std::vector<int64_t> get_int_array(std::string_view key) const;
  // Any value, arrays (at every nesting level) cut to their first `max_elements` elements.
  GgufValue value(std::string_view key, uint64_t max_elements = UINT64_MAX) const;

  // Tensors, in file order.
  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* find_tensor(std::string_view name) const;  // nullptr when absent
  // The tensor's bytes inside the mapping (valid while this GgufFile lives). The data section
  // is aligned within the file, so the span is aligned as far as the mapping (a page) and the
  // tensor's offset allow; quantized blocks need no more than 2-byte alignment.
  std::span<const std::byte> tensor_bytes(const GgufTensorInfo& tensor) const;

  GgufFile(GgufFile&&) noexcept = default;
  GgufFile& operator=(GgufFile&&) noexcept = default;

 private:
  // Where one key's value lies in the file; decoded on demand.
  struct Entry {
    std::string key;
    GgufValueType type;
    GgufValueType element_type;  // arrays
    uint64_t count;              // arrays
    size_t value_offset;         // scalars: the value; strings: the length; arrays: first element
  };

  GgufFile() = default;
  static GgufFile parse(MappedFile file);
  const Entry& entry(std::string_view key) const;
  const Entry& entry_of_type(std::string_view key, GgufValueType type) const;
  const Entry& array_entry(std::string_view key) const;

  MappedFile file_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  std::vector<Entry> entries_;
  std::map<std::string, size_t, std::less<>> entry_index_;
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, size_t, std::less<>> tensor_index_;
};

}  // namespace loom::io
