// SafetensorsFile: a checked, memory-mapped reader of safetensors files (Hugging Face's
// format): an 8-byte little-endian header length, a JSON header naming each tensor's dtype,
// shape and [begin, end) byte range in the data section that follows, and the data.
//
// The header length, the JSON, every dtype, shape and data range are checked before use:
// ranges lie inside the data section, match dtype and shape exactly, and do not overlap. A bad
// file gives loom::Error(ErrorKind::io) naming the tensor or field, never a crash or an
// out-of-bounds read.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "io/mapped_file.h"
#include "loom/dtype.h"
#include "loom/shape.h"

namespace loom::io {

// One row per safetensors dtype: its name in the header and its size.
struct SafetensorsDType {
  const char* name;  // "F32", "BF16", "BOOL", ...
  int64_t element_size;
  std::optional<DType> loom_dtype;  // the Loom dtype with the same bits, when there is one
};
std::span<const SafetensorsDType> safetensors_dtypes();

struct SafetensorsTensorInfo {
  std::string name;
  const SafetensorsDType* dtype;  // row of the table
  Extents shape;                  // row-major, as the header writes it
  int64_t numel;
  uint64_t begin;        // data_offsets[0]: from the start of the data section
  uint64_t end;          // data_offsets[1]
  uint64_t file_offset;  // begin from the start of the file
  uint64_t byte_size;    // end - begin
};

class SafetensorsFile {
 public:
  static SafetensorsFile open(const std::string& path);
  static SafetensorsFile from_bytes(std::vector<std::byte> bytes, std::string label = "<memory>");

  const std::string& path() const { return file_.path(); }
  uint64_t file_size() const { return file_.size(); }
  uint64_t header_size() const { return header_size_; }  // the JSON's bytes
  uint64_t data_offset() const { return 8 + header_size_; }

  // Tensors in the order the header lists them.
  const std::vector<SafetensorsTensorInfo>& tensors() const { return tensors_; }
  const SafetensorsTensorInfo* find_tensor(std::string_view name) const;  // nullptr if absent
  // The tensor's bytes in the mapping (valid while this object lives). Safetensors does not
  // align tensors: the span may start at any address.
  std::span<const std::byte> tensor_bytes(const SafetensorsTensorInfo& tensor) const;
  // The header's "__metadata__" (string to string), empty when absent.
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

  SafetensorsFile(SafetensorsFile&&) noexcept = default;
  SafetensorsFile& operator=(SafetensorsFile&&) noexcept = default;

 private:
  SafetensorsFile() = default;
  static SafetensorsFile parse(MappedFile file);

  MappedFile file_;
  uint64_t header_size_ = 0;
  std::vector<SafetensorsTensorInfo> tensors_;
  std::map<std::string, size_t, std::less<>> index_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace loom::io
