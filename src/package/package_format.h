// The contents of a package (docs/package-format.md) as plain data, and their encoding.
// decode_package only parses and bounds-checks; rebuilding a program from the contents
// (op lookup, schema checks, inference) is package_load.cpp's job.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "ir/node.h"
#include "loom/attributes.h"
#include "loom/package.h"

namespace loom::package {

inline constexpr char kMagic[8] = {'L', 'O', 'O', 'M', 'P', 'K', 'G', '\0'};
inline constexpr size_t kHeaderBytes = 32;  // magic, version, flags, body size, checksum
inline constexpr int kMaxRecordDepth = 4;
inline constexpr uint32_t kFormatVersion = kPackageFormatVersion;
inline constexpr uint32_t kOldestFormatVersion = 1;  // version 1: every weight embedded

struct NodeRef {
  uint32_t node = 0;  // index into PackageContents::nodes
  uint32_t output = 0;
};

struct PackedNode {
  int32_t id = 0;
  std::string op;
  uint32_t op_version = 0;
  std::string name;
  std::vector<NodeRef> inputs;
  std::vector<int32_t> input_slots;  // empty: positional
  Attributes attrs;
  std::vector<ir::TensorType> outputs;
};

struct PackedStep {
  int32_t node_id = 0;
  std::string kernel;
  std::string tactic;
  double ms = -1;
  int32_t tried = 0;
};

// One value (or workspace, or snapshot) of the arena: the memory plan.
struct PackedBuffer {
  int32_t node_id = 0;
  int32_t output = 0;  // -1: the step's workspace; -2: an assign's snapshot
  uint64_t offset = 0;
  uint64_t bytes = 0;
  int32_t first = 0;
  int32_t last = 0;
};

struct PackedPlan {
  std::vector<int64_t> key;  // one size per symbol
  uint64_t arena_bytes = 0;
  std::vector<PackedStep> steps;
  std::vector<PackedBuffer> buffers;
};

// A file whose bytes the package references (format version 2): a GGUF model's weights.
struct PackedFile {
  std::string path;       // as stored: relative to the package's directory, or absolute
  uint64_t size = 0;      // bytes
  uint64_t checksum = 0;  // XXH64 (seed 0) of the whole file
};

// Where a referenced tensor's bytes are: files[file], from `offset`.
struct FileRef {
  uint32_t file = 0;
  uint64_t offset = 0;
};

// A tensor attribute's bytes, named by where they are in memory and how many there are: a
// tensor the encoder meets with this data pointer and size is written as a reference.
using TensorKey = std::pair<const void*, uint64_t>;

struct PackageContents {
  uint32_t format_version = 0;
  // A graph as built (loom::save_graph): no passes run, no plans, no device.
  bool graph_only = false;
  std::string loom_version;
  std::string device;           // Device::str() of the executable saved
  std::string device_identity;  // "cpu", "cuda NVIDIA H200": where the tactics were timed
  std::vector<std::string> symbols;
  std::vector<PackedNode> nodes;
  std::vector<NodeRef> outputs;
  std::vector<PackedPlan> plans;
  // Version 2: the referenced files, and which tensor attributes (their host bytes, as the
  // attributes hold them) live in them. Version 1 has neither.
  std::vector<PackedFile> files;
  std::map<TensorKey, FileRef> references;
};

inline TensorKey tensor_key(const TensorData& t) { return {t.data(), uint64_t(t.nbytes())}; }

// Writes contents.format_version's layout (1 only without references: tests write old
// packages with it).
std::vector<std::byte> encode_package(const PackageContents& contents);
// Throws loom::Error(io), naming `label` and the field, for anything malformed. The files a
// version 2 package references are opened beside `label` (the package's path) and checked
// (package_files.h); referenced tensors read their bytes from them.
PackageContents decode_package(std::span<const std::byte> bytes, const std::string& label);
// The table of referenced files alone (the header and checksum checked; nothing opened).
std::vector<PackedFile> read_file_table(std::span<const std::byte> bytes, const std::string& label);
// Whether the header says "a saved graph" (checks only the magic, version and flags).
bool header_says_graph(std::span<const std::byte> bytes, const std::string& label);

// The body's checksum: 64-bit FNV-1a over little-endian 64-bit words, then the remaining
// bytes one at a time (docs/package-format.md).
uint64_t fnv1a64(std::span<const std::byte> bytes);

}  // namespace loom::package
