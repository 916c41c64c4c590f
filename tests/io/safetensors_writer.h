// Writes small safetensors files for tests: the header as the format describes it (an 8-byte
// little-endian length, then JSON padded with spaces to a multiple of 8), then the data.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace loom::test {

struct SafetensorsEntry {
  std::string name;
  std::string dtype;
  std::vector<int64_t> shape;
  std::vector<std::byte> data;
};

// `header_edit` may change the JSON before it is written (to make bad files).
template <class Edit>
std::vector<std::byte> make_safetensors(const std::vector<SafetensorsEntry>& entries,
                                        const nlohmann::ordered_json& metadata,
                                        Edit&& header_edit) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.is_null()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const auto& e : entries) {
    header[e.name] = {
        {"dtype", e.dtype}, {"shape", e.shape}, {"data_offsets", {offset, offset + e.data.size()}}};
    offset += e.data.size();
  }
  header_edit(header);
  std::string text = header.dump();
  text.resize((text.size() + 7) / 8 * 8, ' ');
  std::vector<std::byte> out(8 + text.size() + offset);
  uint64_t n = text.size();
  std::memcpy(out.data(), &n, 8);
  std::memcpy(out.data() + 8, text.data(), text.size());
  size_t at = 8 + text.size();
  for (const auto& e : entries) {
    if (!e.data.empty()) std::memcpy(out.data() + at, e.data.data(), e.data.size());
    at += e.data.size();
  }
  return out;
}

inline std::vector<std::byte> make_safetensors(const std::vector<SafetensorsEntry>& entries,
                                               const nlohmann::ordered_json& metadata = {}) {
  return make_safetensors(entries, metadata, [](nlohmann::ordered_json&) {});
}

}  // namespace loom::test
