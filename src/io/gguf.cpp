#include "io/gguf.h"

#include <algorithm>
#include <array>
#include <limits>
#include <numeric>
#include <utility>

#include "io/byte_reader.h"
#include "loom/error.h"

namespace loom::io {

namespace {

constexpr uint32_t kValueTypeCount = 13;
// Arrays may nest (the format allows it); a limit keeps a hostile file of arrays inside
// arrays from exhausting the stack.
constexpr int kMaxArrayDepth = 8;
// ggml tensors have at most four dims.
constexpr uint32_t kMaxDims = 4;
// Smallest encodings, used to reject a count before looping over it: a metadata entry is a
// key length (8), a type (4) and at least one byte of value; a tensor info is a name length
// (8), n_dims (4), a type (4) and an offset (8); a string is its length (8); an array is a
// type (4) and a count (8).
constexpr uint64_t kMinEntryBytes = 8 + 4 + 1;
constexpr uint64_t kMinTensorInfoBytes = 8 + 4 + 4 + 8;
constexpr uint64_t kStringLengthBytes = 8;
constexpr uint64_t kArrayHeaderBytes = 4 + 8;

constexpr std::array<const char*, kValueTypeCount> kValueTypeNames{
    "uint8", "int8",   "uint16", "int16",  "uint32", "int32",  "float32",
    "bool",  "string", "array",  "uint64", "int64",  "float64"};

// Bytes of one value of a fixed-size type; 0 for string and array.
uint64_t fixed_size(GgufValueType type) {
  switch (type) {
    case GgufValueType::uint8:
    case GgufValueType::int8:
    case GgufValueType::boolean:
      return 1;
    case GgufValueType::uint16:
    case GgufValueType::int16:
      return 2;
    case GgufValueType::uint32:
    case GgufValueType::int32:
    case GgufValueType::float32:
      return 4;
    case GgufValueType::uint64:
    case GgufValueType::int64:
    case GgufValueType::float64:
      return 8;
    case GgufValueType::string:
    case GgufValueType::array:
      return 0;
  }
  return 0;
}

bool is_int_type(GgufValueType t) {
  switch (t) {
    case GgufValueType::uint8:
    case GgufValueType::int8:
    case GgufValueType::uint16:
    case GgufValueType::int16:
    case GgufValueType::uint32:
    case GgufValueType::int32:
    case GgufValueType::uint64:
    case GgufValueType::int64:
      return true;
    default:
      return false;
  }
}

bool is_float_type(GgufValueType t) {
  return t == GgufValueType::float32 || t == GgufValueType::float64;
}

std::string quoted(std::string_view s) { return "'" + std::string(s) + "'"; }

[[noreturn]] void fail_at(const std::string& path, const std::string& message) {
  fail(ErrorKind::io, path + ": " + message);
}

GgufValueType read_value_type(ByteReader& r, std::string_view what, const std::string& key) {
  size_t at = r.pos();
  uint32_t raw = r.read<uint32_t>(what, key);
  if (raw >= kValueTypeCount)
    fail_at(r.path(), "invalid GGUF value type " + std::to_string(raw) + " for " +
                          std::string(what) + " of " + key + " at offset " + std::to_string(at));
  return static_cast<GgufValueType>(raw);
}

// Reads a string's length and returns its bytes, both checked.
std::string_view read_string(ByteReader& r, std::string_view what, std::string_view context) {
  uint64_t length = r.read<uint64_t>(what, context);
  auto bytes = r.read_bytes(length, what, context);
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

// Walks one value of `type`, checking every length against the file, without decoding it.
// The walk is linear in the file: every element takes at least one byte, and every count is
// checked against what remains before the loop over it starts.
// `key` is the quoted key, as messages show it.
void check_value(ByteReader& r, GgufValueType type, const std::string& key, int depth) {
  if (type == GgufValueType::string) {
    read_string(r, "string value", key);
    return;
  }
  if (type != GgufValueType::array) {
    r.skip(fixed_size(type), gguf_value_type_name(type), key);
    return;
  }
  if (depth >= kMaxArrayDepth)
    fail_at(r.path(), "arrays nested deeper than " + std::to_string(kMaxArrayDepth) +
                          " levels in the value of " + key + " at offset " +
                          std::to_string(r.pos()));
  GgufValueType element = read_value_type(r, "array element type", key);
  size_t count_at = r.pos();
  uint64_t count = r.read<uint64_t>("array length", key);
  uint64_t min_element = element == GgufValueType::string  ? kStringLengthBytes
                         : element == GgufValueType::array ? kArrayHeaderBytes
                                                           : fixed_size(element);
  if (count > r.remaining() / min_element)
    fail_at(r.path(), "array length " + std::to_string(count) + " of " + key + " at offset " +
                          std::to_string(count_at) + " (" + gguf_value_type_name(element) +
                          " elements) exceeds the " + std::to_string(r.remaining()) +
                          " bytes left in the file");
  if (fixed_size(element) != 0) {
    r.skip(count * min_element, "array data", key);
    return;
  }
  for (uint64_t i = 0; i < count; ++i) check_value(r, element, key, depth + 1);
}

// Decodes a value already checked by check_value (the reads stay checked all the same).
GgufValue decode_value(ByteReader& r, GgufValueType type, const std::string& key,
                       uint64_t max_elements) {
  GgufValue v;
  v.type = type;
  switch (type) {
    case GgufValueType::uint8:
      v.u = r.read<uint8_t>("uint8", key);
      break;
    case GgufValueType::uint16:
      v.u = r.read<uint16_t>("uint16", key);
      break;
    case GgufValueType::uint32:
      v.u = r.read<uint32_t>("uint32", key);
      break;
    case GgufValueType::uint64:
      v.u = r.read<uint64_t>("uint64", key);
      break;
    case GgufValueType::int8:
      v.i = r.read<int8_t>("int8", key);
      break;
    case GgufValueType::int16:
      v.i = r.read<int16_t>("int16", key);
      break;
    case GgufValueType::int32:
      v.i = r.read<int32_t>("int32", key);
      break;
    case GgufValueType::int64:
      v.i = r.read<int64_t>("int64", key);
      break;
    case GgufValueType::float32:
      v.f = r.read<float>("float32", key);
      break;
    case GgufValueType::float64:
      v.f = r.read<double>("float64", key);
      break;
    case GgufValueType::boolean:
      v.b = r.read<uint8_t>("bool", key) != 0;
      break;
    case GgufValueType::string:
      v.s = std::string(read_string(r, "string value", key));
      break;
    case GgufValueType::array: {
      v.element_type = read_value_type(r, "array element type", key);
      v.count = r.read<uint64_t>("array length", key);
      uint64_t n = std::min(v.count, max_elements);
      // Bounded by the check at open (count * smallest element <= bytes left).
      v.elements.reserve(static_cast<size_t>(std::min<uint64_t>(n, r.remaining())));
      for (uint64_t i = 0; i < n; ++i)
        v.elements.push_back(decode_value(r, v.element_type, key, max_elements));
      break;
    }
  }
  return v;
}

int64_t to_int(const GgufValue& v, const std::string& key, const std::string& path) {
  if (v.type == GgufValueType::uint8 || v.type == GgufValueType::uint16 ||
      v.type == GgufValueType::uint32 || v.type == GgufValueType::uint64) {
    if (v.u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      fail_at(path, "metadata value of " + quoted(key) + " (" + std::to_string(v.u) +
                        ") does not fit in int64");
    return static_cast<int64_t>(v.u);
  }
  return v.i;
}

double to_float(const GgufValue& v, const std::string& key, const std::string& path) {
  if (is_float_type(v.type)) return v.f;
  return static_cast<double>(to_int(v, key, path));
}

// Multiplies non-negative counts, failing past 2^62 (no tensor is that large).
bool checked_mul(uint64_t a, uint64_t b, uint64_t* out) {
  constexpr uint64_t kLimit = uint64_t{1} << 62;
  if (a != 0 && b > kLimit / a) return false;
  *out = a * b;
  return *out <= kLimit;
}

}  // namespace

const char* gguf_value_type_name(GgufValueType type) {
  auto index = static_cast<uint32_t>(type);
  return index < kValueTypeCount ? kValueTypeNames[index] : "invalid";
}

GgufFile GgufFile::open(const std::string& path) { return parse(MappedFile::open(path)); }

GgufFile GgufFile::from_bytes(std::vector<std::byte> bytes, std::string label) {
  return parse(MappedFile::from_bytes(std::move(bytes), std::move(label)));
}

GgufFile GgufFile::parse(MappedFile mapped) {
  GgufFile f;
  f.file_ = std::move(mapped);
  const std::string& path = f.file_.path();
  ByteReader r(f.file_.bytes(), path);

  // Header: magic, version, tensor count, metadata count.
  auto magic = r.read<std::array<char, 4>>("magic", "the header");
  if (std::string_view(magic.data(), 4) != "GGUF")
    fail_at(path, "not a GGUF file (the first bytes are not 'GGUF')");
  f.version_ = r.read<uint32_t>("version", "the header");
  if (f.version_ != 2 && f.version_ != 3) {
    uint32_t swapped = __builtin_bswap32(f.version_);
    if (swapped >= 1 && swapped <= 3) fail_at(path, "big-endian GGUF files are not supported");
    if (f.version_ == 1) fail_at(path, "GGUF version 1 is not supported (versions 2 and 3 are)");
    fail_at(path, "unsupported GGUF version " + std::to_string(f.version_) +
                      " (versions 2 and 3 are read)");
  }
  uint64_t tensor_count = r.read<uint64_t>("tensor count", "the header");
  uint64_t kv_count = r.read<uint64_t>("metadata count", "the header");
  if (kv_count > r.remaining() / kMinEntryBytes)
    fail_at(path, "metadata count " + std::to_string(kv_count) + " cannot fit in the " +
                      std::to_string(r.remaining()) + " bytes after the header");
  if (tensor_count > r.remaining() / kMinTensorInfoBytes)
    fail_at(path, "tensor count " + std::to_string(tensor_count) + " cannot fit in the " +
                      std::to_string(r.remaining()) + " bytes after the header");

  // Metadata: key, type, value; values are checked here and decoded when asked for.
  for (uint64_t i = 0; i < kv_count; ++i) {
    std::string index = "metadata entry " + std::to_string(i);
    size_t key_at = r.pos();
    std::string key(read_string(r, "key", index));
    if (key.empty())
      fail_at(path, index + " at offset " + std::to_string(key_at) + " has an empty key");
    if (f.entry_index_.count(key))
      fail_at(path,
              "duplicate metadata key " + quoted(key) + " at offset " + std::to_string(key_at));
    const std::string context = quoted(key);
    Entry e;
    e.type = read_value_type(r, "value type", context);
    e.element_type = GgufValueType::uint8;
    e.count = 0;
    if (e.type == GgufValueType::array) {
      // Peek at the array header so that the getters know the element type and length.
      ByteReader peek(f.file_.bytes(), path, r.pos());
      e.element_type = read_value_type(peek, "array element type", context);
      e.count = peek.read<uint64_t>("array length", context);
      e.value_offset = peek.pos();
    } else {
      e.value_offset = r.pos();
    }
    check_value(r, e.type, context, 0);
    e.key = key;
    f.entry_index_.emplace(std::move(key), f.entries_.size());
    f.entries_.push_back(std::move(e));
  }

  if (f.has("general.alignment")) {
    const Entry& e = f.entry("general.alignment");
    if (!is_int_type(e.type))
      fail_at(path, "general.alignment is a " + std::string(gguf_value_type_name(e.type)) +
                        ", not an integer");
    int64_t alignment = f.get_int("general.alignment");
    if (alignment <= 0 || alignment > (int64_t{1} << 30) || (alignment & (alignment - 1)) != 0)
      fail_at(path, "general.alignment is " + std::to_string(alignment) +
                        "; it must be a power of two no larger than 2^30");
    f.alignment_ = static_cast<uint64_t>(alignment);
  }

  // Tensor infos: name, dims, type, offset.
  // No reserve from the counts: the vectors grow only as entries are actually read.
  for (uint64_t t = 0; t < tensor_count; ++t) {
    std::string index = "tensor info " + std::to_string(t);
    size_t info_at = r.pos();
    GgufTensorInfo info;
    info.name = std::string(read_string(r, "name", index));
    const std::string where =
        "tensor " + quoted(info.name) + " (info at offset " + std::to_string(info_at) + ")";
    if (f.tensor_index_.count(info.name)) fail_at(path, "duplicate " + where);
    uint32_t n_dims = r.read<uint32_t>("dimension count", where);
    if (n_dims > kMaxDims)
      fail_at(path, where + " has " + std::to_string(n_dims) + " dimensions; at most " +
                        std::to_string(kMaxDims) + " are allowed");
    uint64_t numel = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      uint64_t extent = r.read<uint64_t>("dimension", where);
      if (extent > (uint64_t{1} << 62) || !checked_mul(numel, extent, &numel))
        fail_at(path, where + " has too many elements (dimension " + std::to_string(d) + " is " +
                          std::to_string(extent) + ")");
      info.ne.push_back(static_cast<int64_t>(extent));
    }
    uint32_t type_id = r.read<uint32_t>("type", where);
    info.traits = find_ggml_type(type_id);
    if (!info.traits)
      fail_at(path, where + " has type " + ggml_type_name(type_id) + " (ggml type " +
                        std::to_string(type_id) + "), which Loom does not read");
    info.type = info.traits->type;
    int64_t row = info.ne.empty() ? 1 : info.ne[0];
    if (row % info.traits->block_size != 0)
      fail_at(path, where + " of type " + info.traits->name + " has rows of " +
                        std::to_string(row) + " elements, not a multiple of its block size " +
                        std::to_string(info.traits->block_size));
    uint64_t blocks = numel / static_cast<uint64_t>(info.traits->block_size);
    if (!checked_mul(blocks, static_cast<uint64_t>(info.traits->bytes_per_block), &info.byte_size))
      fail_at(path, where + " is too large");
    info.numel = static_cast<int64_t>(numel);
    info.offset = r.read<uint64_t>("data offset", where);
    info.shape.assign(info.ne.rbegin(), info.ne.rend());
    f.tensor_index_.emplace(info.name, f.tensors_.size());
    f.tensors_.push_back(std::move(info));
  }

  // The data section starts at the next multiple of the alignment.
  uint64_t end_of_infos = r.pos();
  f.data_offset_ = (end_of_infos + f.alignment_ - 1) / f.alignment_ * f.alignment_;
  if (f.tensors_.empty()) return f;
  if (f.data_offset_ > f.file_.size())
    fail_at(path, "the tensor data section would start at offset " +
                      std::to_string(f.data_offset_) + ", past the end of the file (size " +
                      std::to_string(f.file_.size()) + ")");
  uint64_t data_size = f.file_.size() - f.data_offset_;
  for (auto& info : f.tensors_) {
    if (info.offset % f.alignment_ != 0)
      fail_at(path, "tensor " + quoted(info.name) + " has data offset " +
                        std::to_string(info.offset) + ", not a multiple of the alignment " +
                        std::to_string(f.alignment_));
    if (info.offset > data_size || info.byte_size > data_size - info.offset)
      fail_at(path, "tensor " + quoted(info.name) + " data [" + std::to_string(info.offset) + ", " +
                        std::to_string(info.offset + info.byte_size) +
                        ") lies outside the data section of " + std::to_string(data_size) +
                        " bytes (starting at file offset " + std::to_string(f.data_offset_) + ")");
    info.file_offset = f.data_offset_ + info.offset;
  }
  // No two tensors may share bytes.
  std::vector<size_t> order(f.tensors_.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return f.tensors_[a].offset < f.tensors_[b].offset; });
  const GgufTensorInfo* previous = nullptr;
  for (size_t k : order) {
    const GgufTensorInfo& info = f.tensors_[k];
    if (info.byte_size == 0) continue;
    if (previous && info.offset < previous->offset + previous->byte_size)
      fail_at(path, "tensors " + quoted(previous->name) + " and " + quoted(info.name) +
                        " overlap at data offset " + std::to_string(info.offset));
    previous = &info;
  }
  return f;
}

bool GgufFile::has(std::string_view key) const {
  return entry_index_.find(key) != entry_index_.end();
}

std::vector<std::string> GgufFile::keys() const {
  std::vector<std::string> out;
  out.reserve(entries_.size());
  for (const auto& e : entries_) out.push_back(e.key);
  return out;
}

const GgufFile::Entry& GgufFile::entry(std::string_view key) const {
  auto it = entry_index_.find(key);
  if (it == entry_index_.end()) fail_at(path(), "metadata key " + quoted(key) + " is missing");
  return entries_[it->second];
}

const GgufFile::Entry& GgufFile::entry_of_type(std::string_view key, GgufValueType type) const {
  const Entry& e = entry(key);
  if (e.type != type)
    fail_at(path(), "metadata key " + quoted(key) + " is a " + gguf_value_type_name(e.type) +
                        ", not a " + gguf_value_type_name(type));
  return e;
}

const GgufFile::Entry& GgufFile::array_entry(std::string_view key) const {
  return entry_of_type(key, GgufValueType::array);
}

GgufValueType GgufFile::type(std::string_view key) const { return entry(key).type; }
GgufValueType GgufFile::array_type(std::string_view key) const {
  return array_entry(key).element_type;
}
uint64_t GgufFile::array_size(std::string_view key) const { return array_entry(key).count; }

GgufValue GgufFile::value(std::string_view key, uint64_t max_elements) const {
  const Entry& e = entry(key);
  if (e.type != GgufValueType::array) {
    ByteReader r(file_.bytes(), path(), e.value_offset);
    return decode_value(r, e.type, quoted(e.key), max_elements);
  }
  // value_offset points past the array header; decode from the header.
  ByteReader r(file_.bytes(), path(), e.value_offset - kArrayHeaderBytes);
  return decode_value(r, GgufValueType::array, quoted(e.key), max_elements);
}

std::string GgufFile::get_string(std::string_view key) const {
  const Entry& e = entry_of_type(key, GgufValueType::string);
  ByteReader r(file_.bytes(), path(), e.value_offset);
  return std::string(read_string(r, "string value", quoted(e.key)));
}

int64_t GgufFile::get_int(std::string_view key) const {
  const Entry& e = entry(key);
  if (!is_int_type(e.type))
    fail_at(path(), "metadata key " + quoted(key) + " is a " + gguf_value_type_name(e.type) +
                        ", not an integer");
  return to_int(value(key), e.key, path());
}

double GgufFile::get_float(std::string_view key) const {
  const Entry& e = entry(key);
  if (!is_int_type(e.type) && !is_float_type(e.type))
    fail_at(path(), "metadata key " + quoted(key) + " is a " + gguf_value_type_name(e.type) +
                        ", not a number");
  return to_float(value(key), e.key, path());
}

bool GgufFile::get_bool(std::string_view key) const {
  entry_of_type(key, GgufValueType::boolean);
  return value(key).b;
}

std::vector<std::string> GgufFile::get_string_array(std::string_view key) const {
  const Entry& e = array_entry(key);
  if (e.element_type != GgufValueType::string)
    fail_at(path(), "metadata key " + quoted(key) + " is an array of " +
                        gguf_value_type_name(e.element_type) + ", not of string");
  ByteReader r(file_.bytes(), path(), e.value_offset);
  std::vector<std::string> out;
  out.reserve(static_cast<size_t>(e.count));  // count * 8 bytes were checked to fit the file
  const std::string context = quoted(e.key);
  for (uint64_t i = 0; i < e.count; ++i)
    out.emplace_back(read_string(r, "string element", context));
  return out;
}

std::vector<int64_t> GgufFile::get_int_array(std::string_view key) const {
  const Entry& e = array_entry(key);
  if (!is_int_type(e.element_type))
    fail_at(path(), "metadata key " + quoted(key) + " is an array of " +
                        gguf_value_type_name(e.element_type) + ", not of integers");
  ByteReader r(file_.bytes(), path(), e.value_offset);
  const std::string context = quoted(e.key);
  std::vector<int64_t> out;
  out.reserve(static_cast<size_t>(e.count));
  for (uint64_t i = 0; i < e.count; ++i)
    out.push_back(to_int(decode_value(r, e.element_type, context, 0), e.key, path()));
  return out;
}

std::vector<double> GgufFile::get_float_array(std::string_view key) const {
  const Entry& e = array_entry(key);
  if (!is_int_type(e.element_type) && !is_float_type(e.element_type))
    fail_at(path(), "metadata key " + quoted(key) + " is an array of " +
                        gguf_value_type_name(e.element_type) + ", not of numbers");
  ByteReader r(file_.bytes(), path(), e.value_offset);
  const std::string context = quoted(e.key);
  std::vector<double> out;
  out.reserve(static_cast<size_t>(e.count));
  for (uint64_t i = 0; i < e.count; ++i)
    out.push_back(to_float(decode_value(r, e.element_type, context, 0), e.key, path()));
  return out;
}

const GgufTensorInfo* GgufFile::find_tensor(std::string_view name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

std::span<const std::byte> GgufFile::tensor_bytes(const GgufTensorInfo& tensor) const {
  // Checked again: the info may come from another file.
  if (tensor.file_offset > file_.size() || tensor.byte_size > file_.size() - tensor.file_offset)
    fail_at(path(), "tensor " + quoted(tensor.name) + " lies outside this file");
  return file_.bytes().subspan(static_cast<size_t>(tensor.file_offset),
                               static_cast<size_t>(tensor.byte_size));
}

}  // namespace loom::io
