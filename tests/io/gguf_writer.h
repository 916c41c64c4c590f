// GgufWriter: writes small GGUF files for tests (any metadata value, nested arrays included,
// and tensors of any ggml type id), independently of the reader in src/io. It also records
// where each integer field (lengths, counts, types, dims, offsets) lies, so that the fuzz test
// can aim its mutations at them.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace loom::test {

class GgufWriter {
 public:
  // GGUF value type numbers, spelled out here so that the writer does not share the reader's.
  enum Type : uint32_t {
    U8 = 0,
    I8 = 1,
    U16 = 2,
    I16 = 3,
    U32 = 4,
    I32 = 5,
    F32 = 6,
    BOOL = 7,
    STRING = 8,
    ARRAY = 9,
    U64 = 10,
    I64 = 11,
    F64 = 12,
  };

  // A value ready to be written: its type and its encoding (without the type tag).
  struct Value {
    uint32_t type;
    std::vector<std::byte> bytes;
    std::vector<std::pair<size_t, int>> fields;  // integer fields inside `bytes`: (offset, width)
  };

  template <class T>
  static Value scalar(uint32_t type, T v) {
    Value out{type, {}, {}};
    append(out.bytes, v);
    return out;
  }
  static Value u8(uint8_t v) { return scalar(U8, v); }
  static Value i8(int8_t v) { return scalar(I8, v); }
  static Value u16(uint16_t v) { return scalar(U16, v); }
  static Value i16(int16_t v) { return scalar(I16, v); }
  static Value u32(uint32_t v) { return scalar(U32, v); }
  static Value i32(int32_t v) { return scalar(I32, v); }
  static Value u64(uint64_t v) { return scalar(U64, v); }
  static Value i64(int64_t v) { return scalar(I64, v); }
  static Value f32(float v) { return scalar(F32, v); }
  static Value f64(double v) { return scalar(F64, v); }
  static Value boolean(bool v) { return scalar(BOOL, static_cast<uint8_t>(v ? 1 : 0)); }
  static Value string(std::string_view s) {
    Value out{STRING, {}, {{0, 8}}};
    append_string(out.bytes, s);
    return out;
  }
  // An array of values that all have `element_type`.
  static Value array(uint32_t element_type, const std::vector<Value>& elements) {
    Value out{ARRAY, {}, {{0, 4}, {4, 8}}};
    append(out.bytes, element_type);
    append(out.bytes, static_cast<uint64_t>(elements.size()));
    for (const auto& e : elements) {
      if (e.type != element_type) throw std::logic_error("GgufWriter: mixed array");
      for (auto [at, width] : e.fields) out.fields.push_back({out.bytes.size() + at, width});
      append_bytes(out.bytes, e.bytes.data(), e.bytes.size());
    }
    return out;
  }
  static Value strings(const std::vector<std::string>& items) {
    std::vector<Value> values;
    for (const auto& s : items) values.push_back(string(s));
    return array(STRING, values);
  }

  explicit GgufWriter(uint32_t version = 3) : version_(version) {}

  void add(std::string_view key, const Value& value) { kvs_.push_back({std::string(key), value}); }
  // Also writes general.alignment (uint32) and lays the data out with it.
  void set_alignment(uint32_t alignment) {
    alignment_ = alignment;
    add("general.alignment", u32(alignment));
  }
  // A tensor of ggml type `type_id` with dims `ne` (GGUF order, ne[0] innermost) and raw bytes.
  // Offsets are assigned in order, each aligned; `offset_override` writes a chosen offset.
  void add_tensor(std::string_view name, uint32_t type_id, std::vector<uint64_t> ne,
                  std::vector<std::byte> data, int64_t offset_override = -1) {
    tensors_.push_back(
        {std::string(name), type_id, std::move(ne), std::move(data), offset_override});
  }

  std::vector<std::byte> bytes() {
    std::vector<std::byte> out;
    fields_.clear();
    append_bytes(out, "GGUF", 4);
    field(out, 4);
    append(out, version_);
    field(out, 8);
    append(out, static_cast<uint64_t>(tensors_.size()));
    field(out, 8);
    append(out, static_cast<uint64_t>(kvs_.size()));
    for (const auto& [key, value] : kvs_) {
      field(out, 8);
      append_string(out, key);
      field(out, 4);
      append(out, value.type);
      for (auto [at, width] : value.fields) fields_.push_back({out.size() + at, width});
      append_bytes(out, value.bytes.data(), value.bytes.size());
    }
    std::vector<uint64_t> offsets;
    uint64_t next = 0;
    for (const auto& t : tensors_) {
      uint64_t offset = t.offset_override >= 0 ? static_cast<uint64_t>(t.offset_override) : next;
      offsets.push_back(offset);
      // An offset chosen to lie far outside the file is written but gets no data.
      if (offset < kMaxDataBytes) next = std::max(next, align(offset + t.data.size()));
    }
    for (size_t i = 0; i < tensors_.size(); ++i) {
      const auto& t = tensors_[i];
      field(out, 8);
      append_string(out, t.name);
      field(out, 4);
      append(out, static_cast<uint32_t>(t.ne.size()));
      for (uint64_t d : t.ne) {
        field(out, 8);
        append(out, d);
      }
      field(out, 4);
      append(out, t.type_id);
      field(out, 8);
      append(out, offsets[i]);
    }
    out.resize(align(out.size()), std::byte{0});
    size_t data_start = out.size();
    for (size_t i = 0; i < tensors_.size(); ++i) {
      const auto& t = tensors_[i];
      if (offsets[i] >= kMaxDataBytes || t.data.empty()) continue;
      if (out.size() < data_start + offsets[i] + t.data.size())
        out.resize(data_start + offsets[i] + t.data.size(), std::byte{0});
      std::memcpy(out.data() + data_start + offsets[i], t.data.data(), t.data.size());
    }
    if (!tensors_.empty()) out.resize(data_start + next, std::byte{0});
    return out;
  }

  void write(const std::string& path) {
    auto data = bytes();
    std::ofstream f(path, std::ios::binary);
    f.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
    if (!f) throw std::runtime_error("GgufWriter: cannot write " + path);
  }

  // Integer fields of the last bytes(): (offset, width in bytes).
  const std::vector<std::pair<size_t, int>>& fields() const { return fields_; }

  // resize + memcpy rather than insert: GCC 12 at -O3 warns falsely (stringop-overflow) on
  // vector<byte>::insert.
  static void append_bytes(std::vector<std::byte>& out, const void* data, size_t n) {
    if (n == 0) return;
    size_t at = out.size();
    out.resize(at + n);
    std::memcpy(out.data() + at, data, n);
  }
  template <class T>
  static void append(std::vector<std::byte>& out, T v) {
    append_bytes(out, &v, sizeof(T));
  }
  static void append_string(std::vector<std::byte>& out, std::string_view s) {
    append(out, static_cast<uint64_t>(s.size()));
    if (s.empty()) return;
    append_bytes(out, s.data(), s.size());
  }

 private:
  struct Kv {
    std::string key;
    Value value;
  };
  struct Tensor {
    std::string name;
    uint32_t type_id;
    std::vector<uint64_t> ne;
    std::vector<std::byte> data;
    int64_t offset_override;
  };
  static constexpr uint64_t kMaxDataBytes = uint64_t{1} << 30;
  uint64_t align(uint64_t n) const { return (n + alignment_ - 1) / alignment_ * alignment_; }
  void field(const std::vector<std::byte>& out, int width) {
    fields_.push_back({out.size(), width});
  }

  uint32_t version_;
  uint64_t alignment_ = 32;
  std::vector<Kv> kvs_;
  std::vector<Tensor> tensors_;
  std::vector<std::pair<size_t, int>> fields_;
};

}  // namespace loom::test
