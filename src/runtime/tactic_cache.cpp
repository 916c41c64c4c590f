#include "runtime/tactic_cache.h"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>

#include "loom/error.h"

namespace loom::runtime {

namespace {

constexpr const char* kHeader = "loom-tactic-cache 1";

struct Cache {
  std::mutex mutex;
  std::map<std::string, TacticChoice> entries;
};

Cache& cache() {
  static Cache c;
  return c;
}

// Largest power of two (<= 256) dividing the address.
unsigned alignment_of(const void* p) {
  auto v = reinterpret_cast<uintptr_t>(p);
  unsigned a = 256;
  while (a > 1 && v % a) a /= 2;
  return a;
}

void append_operand(std::string& key, const TensorView& v) {
  key += ' ';
  key += dtype_name(v.dtype);
  key += to_string(v.shape);
  if (v.strides != contiguous_strides(v.shape)) {
    key += "s";
    key += to_string(v.strides);
  }
  key += '@' + std::to_string(alignment_of(v.data));
}

}  // namespace

std::string tactic_key(const std::string& device_identity, const ir::Node& node,
                       std::span<const TensorView> inputs, std::span<const TensorView> outputs) {
  std::string key = device_identity + " | " + node.op_name() + " " + node.attrs.str() + " |";
  for (const auto& v : inputs) append_operand(key, v);
  key += " ->";
  for (const auto& v : outputs) append_operand(key, v);
  return key;
}

std::optional<TacticChoice> find_tactic(const std::string& key) {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  auto it = c.entries.find(key);
  if (it == c.entries.end()) return std::nullopt;
  return it->second;
}

void remember_tactic(const std::string& key, const TacticChoice& choice) {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  c.entries[key] = choice;
}

// One entry per line: key, kernel, tactic, milliseconds, candidates tried, tab-separated
// (names and keys hold no tabs or newlines).
void load_tactic_cache(const std::string& path) {
  std::ifstream in(path);
  if (!in) return;
  std::string line;
  if (!std::getline(in, line) || line != kHeader)
    fail(ErrorKind::io, "tactic cache '" + path + "': not a Loom tactic cache (first line '" +
                            line.substr(0, 40) + "')");
  std::map<std::string, TacticChoice> read;
  for (int number = 2; std::getline(in, line); ++number) {
    if (line.empty()) continue;
    std::vector<std::string> fields;
    std::stringstream ss(line);
    for (std::string f; std::getline(ss, f, '\t');) fields.push_back(f);
    TacticChoice choice;
    bool ok = fields.size() == 5;
    if (ok) {
      choice.kernel = fields[1];
      choice.tactic = fields[2];
      char* end = nullptr;
      choice.ms = std::strtod(fields[3].c_str(), &end);
      ok = end && *end == '\0' && !fields[3].empty();
      long tried = std::strtol(fields[4].c_str(), &end, 10);
      ok = ok && end && *end == '\0' && !fields[4].empty() && tried >= 0 && tried < 1 << 20;
      choice.tried = int(tried);
    }
    if (!ok)
      fail(ErrorKind::io, "tactic cache '" + path + "', line " + std::to_string(number) +
                              ": expected key, kernel, tactic, ms, tried separated by tabs");
    read[fields[0]] = choice;
  }
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  for (auto& [key, choice] : read) c.entries.emplace(key, choice);
}

void save_tactic_cache(const std::string& path) {
  std::string text = std::string(kHeader) + "\n";
  {
    Cache& c = cache();
    std::lock_guard<std::mutex> lock(c.mutex);
    for (const auto& [key, e] : c.entries) {
      std::ostringstream ms;
      ms.precision(6);
      ms << e.ms;
      text += key + '\t' + e.kernel + '\t' + e.tactic + '\t' + ms.str() + '\t' +
              std::to_string(e.tried) + '\n';
    }
  }
  // Written beside the target and renamed over it, so a reader never sees half a file.
  std::string tmp = path + ".tmp" + std::to_string(reinterpret_cast<uintptr_t>(&text));
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << text;
    if (!out) fail(ErrorKind::io, "cannot write tactic cache '" + tmp + "'");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    fail(ErrorKind::io, "cannot write tactic cache '" + path + "'");
  }
}

std::string tactic_cache_path(const std::string& option) {
  if (!option.empty()) return option;
  const char* env = std::getenv("LOOM_TACTIC_CACHE");
  return env ? env : "";
}

}  // namespace loom::runtime

namespace loom {

void clear_tactic_cache() {
  auto& c = runtime::cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  c.entries.clear();
}

}  // namespace loom
