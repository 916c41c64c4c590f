#include "io/safetensors.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <nlohmann/json.hpp>
#include <numeric>
#include <set>
#include <utility>

#include "loom/error.h"

namespace loom::io {

namespace {

using Json = nlohmann::ordered_json;  // keeps the header's order of tensors

// The reference implementation refuses headers over 100 MB; so does Loom.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;
// A valid header nests three levels (header, tensor, shape); deeper input is refused while
// parsing, before it is built.
constexpr int kMaxJsonDepth = 4;

const std::array<SafetensorsDType, 15> kDTypes{{
    {"F64", 8, std::nullopt},
    {"F32", 4, DType::f32},
    {"F16", 2, DType::f16},
    {"BF16", 2, DType::bf16},
    {"I64", 8, DType::i64},
    {"I32", 4, DType::i32},
    {"I16", 2, std::nullopt},
    {"I8", 1, DType::i8},
    {"U64", 8, std::nullopt},
    {"U32", 4, std::nullopt},
    {"U16", 2, std::nullopt},
    {"U8", 1, DType::u8},
    {"BOOL", 1, DType::boolean},
    {"F8_E4M3", 1, std::nullopt},
    {"F8_E5M2", 1, std::nullopt},
}};

[[noreturn]] void fail_at(const std::string& path, const std::string& message) {
  fail(ErrorKind::io, path + ": " + message);
}

std::string in_quotes(std::string_view s) { return "'" + std::string(s) + "'"; }

// A non-negative JSON integer, or an error naming the field.
uint64_t unsigned_field(const Json& v, const std::string& path, const std::string& what) {
  if (!v.is_number_unsigned()) {
    if (v.is_number_integer()) fail_at(path, what + " is negative");
    fail_at(path, what + " is not a non-negative integer");
  }
  return v.get<uint64_t>();
}

bool checked_mul(uint64_t a, uint64_t b, uint64_t* out) {
  constexpr uint64_t kLimit = uint64_t{1} << 62;
  if (a != 0 && b > kLimit / a) return false;
  *out = a * b;
  return *out <= kLimit;
}

}  // namespace

std::span<const SafetensorsDType> safetensors_dtypes() { return kDTypes; }

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  return parse(MappedFile::open(path));
}

SafetensorsFile SafetensorsFile::from_bytes(std::vector<std::byte> bytes, std::string label) {
  return parse(MappedFile::from_bytes(std::move(bytes), std::move(label)));
}

SafetensorsFile SafetensorsFile::parse(MappedFile mapped) {
  SafetensorsFile f;
  f.file_ = std::move(mapped);
  const std::string& path = f.file_.path();
  auto bytes = f.file_.bytes();
  if (bytes.size() < 8)
    fail_at(path,
            "truncated: a safetensors file starts with an 8-byte header length, the file has " +
                std::to_string(bytes.size()) + " bytes");
  uint64_t n;
  std::memcpy(&n, bytes.data(), 8);
  if (n > bytes.size() - 8)
    fail_at(path, "header length " + std::to_string(n) + " exceeds the " +
                      std::to_string(bytes.size() - 8) + " bytes after it");
  if (n > kMaxHeaderBytes)
    fail_at(path, "header length " + std::to_string(n) + " exceeds the limit of " +
                      std::to_string(kMaxHeaderBytes) + " bytes");
  f.header_size_ = n;
  const char* text = reinterpret_cast<const char*>(bytes.data() + 8);

  // Parse, refusing deep nesting and duplicate tensor names as they are met.
  std::set<std::string, std::less<>> seen;
  Json::parser_callback_t check = [&](int depth, nlohmann::json::parse_event_t event,
                                      Json& parsed) {
    if (depth > kMaxJsonDepth)
      fail_at(path, "header JSON nests deeper than " + std::to_string(kMaxJsonDepth) + " levels");
    if (event == nlohmann::json::parse_event_t::key && depth == 1) {
      auto name = parsed.get<std::string>();
      if (!seen.insert(name).second) fail_at(path, "header names " + in_quotes(name) + " twice");
    }
    return true;
  };
  Json header;
  try {
    header = Json::parse(text, text + n, check);
  } catch (const nlohmann::json::exception& e) {
    fail_at(path, std::string("header is not valid JSON: ") + e.what());
  }
  if (!header.is_object()) fail_at(path, "header is not a JSON object");

  uint64_t data_size = bytes.size() - 8 - n;
  for (auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) fail_at(path, "__metadata__ is not an object");
      for (auto& [key, value] : entry.items()) {
        if (!value.is_string())
          fail_at(path, "__metadata__ value of " + in_quotes(key) + " is not a string");
        f.metadata_[key] = value.get<std::string>();
      }
      continue;
    }
    const std::string where = "tensor " + in_quotes(name);
    if (!entry.is_object()) fail_at(path, where + " is not a JSON object");
    auto dtype_it = entry.find("dtype");
    auto shape_it = entry.find("shape");
    auto offsets_it = entry.find("data_offsets");
    if (dtype_it == entry.end() || !dtype_it->is_string())
      fail_at(path, where + " has no dtype string");
    if (shape_it == entry.end() || !shape_it->is_array())
      fail_at(path, where + " has no shape array");
    if (offsets_it == entry.end() || !offsets_it->is_array() || offsets_it->size() != 2)
      fail_at(path, where + " has no data_offsets pair");

    SafetensorsTensorInfo info;
    info.name = name;
    const auto& dtype_name = dtype_it->get_ref<const std::string&>();
    auto row = std::find_if(kDTypes.begin(), kDTypes.end(),
                            [&](const SafetensorsDType& d) { return dtype_name == d.name; });
    if (row == kDTypes.end())
      fail_at(path, where + " has dtype " + in_quotes(dtype_name) + ", which Loom does not read");
    info.dtype = &*row;
    uint64_t numel = 1;
    for (size_t d = 0; d < shape_it->size(); ++d) {
      uint64_t extent =
          unsigned_field((*shape_it)[d], path, where + " shape[" + std::to_string(d) + "]");
      if (extent > (uint64_t{1} << 62) || !checked_mul(numel, extent, &numel))
        fail_at(path, where + " has too many elements");
      info.shape.push_back(static_cast<int64_t>(extent));
    }
    info.numel = static_cast<int64_t>(numel);
    info.begin = unsigned_field((*offsets_it)[0], path, where + " data_offsets[0]");
    info.end = unsigned_field((*offsets_it)[1], path, where + " data_offsets[1]");
    if (info.begin > info.end)
      fail_at(path, where + " data_offsets [" + std::to_string(info.begin) + ", " +
                        std::to_string(info.end) + ") end before they begin");
    if (info.end > data_size)
      fail_at(path, where + " data_offsets [" + std::to_string(info.begin) + ", " +
                        std::to_string(info.end) + ") reach past the data section of " +
                        std::to_string(data_size) + " bytes");
    info.byte_size = info.end - info.begin;
    uint64_t want = 0;
    if (!checked_mul(numel, static_cast<uint64_t>(info.dtype->element_size), &want) ||
        want != info.byte_size)
      fail_at(path, where + " of dtype " + info.dtype->name + " and " + std::to_string(numel) +
                        " elements needs " + std::to_string(want) +
                        " bytes, but its data_offsets span " + std::to_string(info.byte_size));
    info.file_offset = 8 + n + info.begin;
    f.index_.emplace(info.name, f.tensors_.size());
    f.tensors_.push_back(std::move(info));
  }

  // No two tensors may share bytes.
  std::vector<size_t> order(f.tensors_.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return f.tensors_[a].begin < f.tensors_[b].begin; });
  const SafetensorsTensorInfo* previous = nullptr;
  for (size_t k : order) {
    const auto& info = f.tensors_[k];
    if (info.byte_size == 0) continue;
    if (previous && info.begin < previous->end)
      fail_at(path, "tensors " + in_quotes(previous->name) + " and " + in_quotes(info.name) +
                        " overlap at data offset " + std::to_string(info.begin));
    previous = &info;
  }
  return f;
}

const SafetensorsTensorInfo* SafetensorsFile::find_tensor(std::string_view name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

std::span<const std::byte> SafetensorsFile::tensor_bytes(
    const SafetensorsTensorInfo& tensor) const {
  if (tensor.file_offset > file_.size() || tensor.byte_size > file_.size() - tensor.file_offset)
    fail_at(path(), "tensor " + in_quotes(tensor.name) + " lies outside this file");
  return file_.bytes().subspan(static_cast<size_t>(tensor.file_offset),
                               static_cast<size_t>(tensor.byte_size));
}

}  // namespace loom::io
