// `loom inspect PATH [--json]`: prints a GGUF or safetensors file's metadata and tensor table,
// as the checked readers in src/io see it. Text mode abbreviates long arrays and strings; JSON
// mode prints everything, for tools and tests (python/tests/test_gguf_reference.py).
#include <fmt/format.h>

#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>

#include "commands.h"
#include "io/gguf.h"
#include "io/mapped_file.h"
#include "io/safetensors.h"
#include "loom/error.h"

namespace loom::tools {

namespace {

using Json = nlohmann::ordered_json;
using io::GgufValue;
using io::GgufValueType;

Json to_json(const GgufValue& v) {
  switch (v.type) {
    case GgufValueType::uint8:
    case GgufValueType::uint16:
    case GgufValueType::uint32:
    case GgufValueType::uint64:
      return v.u;
    case GgufValueType::int8:
    case GgufValueType::int16:
    case GgufValueType::int32:
    case GgufValueType::int64:
      return v.i;
    case GgufValueType::float32:
    case GgufValueType::float64:
      return v.f;
    case GgufValueType::boolean:
      return v.b;
    case GgufValueType::string:
      return v.s;
    case GgufValueType::array: {
      Json out = Json::array();
      for (const auto& e : v.elements) out.push_back(to_json(e));
      return out;
    }
  }
  return nullptr;
}

// JSON text that never throws on bytes that are not UTF-8 (they become U+FFFD).
std::string dump(const Json& j, int indent = -1) {
  return j.dump(indent, ' ', false, Json::error_handler_t::replace);
}

std::string string_text(const std::string& s) {
  if (s.size() <= 80) return dump(Json(s));
  return dump(Json(s.substr(0, 80))) + fmt::format("... ({} bytes)", s.size());
}

// One value for text mode: strings quoted and cut at 80 bytes, arrays at `max_items`.
std::string to_text(const GgufValue& v, size_t max_items) {
  if (v.type == GgufValueType::string) return string_text(v.s);
  if (v.type != GgufValueType::array) return dump(to_json(v));
  std::string out = "[";
  for (size_t i = 0; i < v.elements.size(); ++i) {
    if (i) out += ", ";
    out += to_text(v.elements[i], max_items);
  }
  if (v.count > v.elements.size())
    out +=
        fmt::format("{}... {} more", v.elements.empty() ? "" : ", ", v.count - v.elements.size());
  return out + "]";
}

std::string type_text(const io::GgufFile& f, const std::string& key) {
  GgufValueType type = f.type(key);
  if (type != GgufValueType::array) return io::gguf_value_type_name(type);
  return fmt::format("array[{}; {}]", io::gguf_value_type_name(f.array_type(key)),
                     f.array_size(key));
}

std::string dims_text(const std::vector<int64_t>& dims) {
  return fmt::format("[{}]", fmt::join(dims, ", "));
}

void inspect_gguf(const std::string& path, bool json, size_t max_items) {
  io::GgufFile f = io::GgufFile::open(path);
  if (json) {
    Json out;
    out["format"] = "gguf";
    out["path"] = path;
    out["version"] = f.version();
    out["file_size"] = f.file_size();
    out["alignment"] = f.alignment();
    out["data_offset"] = f.data_offset();
    Json metadata = Json::object();
    for (const auto& key : f.keys()) {
      Json entry;
      entry["type"] = io::gguf_value_type_name(f.type(key));
      if (f.type(key) == GgufValueType::array)
        entry["element_type"] = io::gguf_value_type_name(f.array_type(key));
      entry["value"] = to_json(f.value(key));
      metadata[key] = std::move(entry);
    }
    out["metadata"] = std::move(metadata);
    Json tensors = Json::array();
    for (const auto& t : f.tensors())
      tensors.push_back({{"name", t.name},
                         {"type", t.traits->name},
                         {"type_id", t.traits->id()},
                         {"ne", t.ne},
                         {"shape", t.shape},
                         {"offset", t.offset},
                         {"file_offset", t.file_offset},
                         {"bytes", t.byte_size}});
    out["tensors"] = std::move(tensors);
    fmt::print("{}\n", dump(out));
    return;
  }
  fmt::print("{}: GGUF version {}, {} bytes, {} metadata keys, {} tensors\n", path, f.version(),
             f.file_size(), f.keys().size(), f.tensors().size());
  fmt::print("alignment {}, tensor data at offset {}\n\nmetadata:\n", f.alignment(),
             f.data_offset());
  for (const auto& key : f.keys())
    fmt::print("  {} ({}) = {}\n", key, type_text(f, key),
               to_text(f.value(key, max_items), max_items));
  fmt::print("\ntensors (shape row-major, the last dim contiguous; offset in the file):\n");
  size_t width = 4;
  for (const auto& t : f.tensors()) width = std::max(width, t.name.size());
  fmt::print("  {:<{}}  {:<6}  {:<20}  {:>12}  {:>12}\n", "name", width, "type", "shape", "offset",
             "bytes");
  for (const auto& t : f.tensors())
    fmt::print("  {:<{}}  {:<6}  {:<20}  {:>12}  {:>12}\n", t.name, width, t.traits->name,
               dims_text(t.shape), t.file_offset, t.byte_size);
}

void inspect_safetensors(const std::string& path, bool json) {
  io::SafetensorsFile f = io::SafetensorsFile::open(path);
  if (json) {
    Json out;
    out["format"] = "safetensors";
    out["path"] = path;
    out["file_size"] = f.file_size();
    out["header_size"] = f.header_size();
    out["metadata"] = f.metadata();
    Json tensors = Json::array();
    for (const auto& t : f.tensors())
      tensors.push_back({{"name", t.name},
                         {"dtype", t.dtype->name},
                         {"shape", t.shape},
                         {"data_offsets", {t.begin, t.end}},
                         {"file_offset", t.file_offset},
                         {"bytes", t.byte_size}});
    out["tensors"] = std::move(tensors);
    fmt::print("{}\n", dump(out));
    return;
  }
  fmt::print("{}: safetensors, {} bytes, {} tensors, header {} bytes\n", path, f.file_size(),
             f.tensors().size(), f.header_size());
  if (!f.metadata().empty()) {
    fmt::print("\nmetadata:\n");
    for (const auto& [key, value] : f.metadata())
      fmt::print("  {} = {}\n", key, string_text(value));
  }
  fmt::print("\ntensors (offset in the file):\n");
  size_t width = 4;
  for (const auto& t : f.tensors()) width = std::max(width, t.name.size());
  fmt::print("  {:<{}}  {:<7}  {:<20}  {:>12}  {:>12}\n", "name", width, "dtype", "shape", "offset",
             "bytes");
  for (const auto& t : f.tensors())
    fmt::print("  {:<{}}  {:<7}  {:<20}  {:>12}  {:>12}\n", t.name, width, t.dtype->name,
               dims_text(t.shape), t.file_offset, t.byte_size);
}

// GGUF files say so in their first four bytes; anything else is read as safetensors.
bool looks_like_gguf(const std::string& path) {
  io::MappedFile file = io::MappedFile::open(path);
  auto bytes = file.bytes();
  return bytes.size() >= 4 && std::memcmp(bytes.data(), "GGUF", 4) == 0;
}

}  // namespace

void add_inspect_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "inspect", "Print a GGUF or safetensors file's metadata and tensor table, checking it");
  auto path = std::make_shared<std::string>();
  auto json = std::make_shared<bool>(false);
  auto max_items = std::make_shared<size_t>(8);
  cmd->add_option("path", *path, "a .gguf or .safetensors file")->required();
  cmd->add_flag("--json", *json, "print everything as one JSON object (arrays in full)");
  cmd->add_option("--max-array", *max_items, "array elements shown in text mode")
      ->capture_default_str();
  cmd->callback([=] {
    try {
      bool gguf = path->ends_with(".gguf") || looks_like_gguf(*path);
      if (gguf) {
        inspect_gguf(*path, *json, *max_items);
      } else {
        try {
          inspect_safetensors(*path, *json);
        } catch (const Error& e) {
          if (path->ends_with(".safetensors")) throw;
          fail(e.kind(), std::string(e.what()) + " (the file does not start with 'GGUF' and " +
                             "is not safetensors either)");
        }
      }
    } catch (const Error& e) {
      std::fflush(stdout);
      fmt::print(stderr, "loom inspect: {} error: {}\n", error_kind_name(e.kind()), e.what());
      throw CLI::RuntimeError(1);
    }
  });
}

}  // namespace loom::tools
