// The contents of a package (docs/package-format.md) as plain data, and their encoding.
// decode_package only parses and bounds-checks; rebuilding a program from the contents
// (op lookup, schema checks, inference) is package_load.cpp's job.
#pragma once

#include <cstdint>
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
};

std::vector<std::byte> encode_package(const PackageContents& contents);
// Throws loom::Error(io), naming `label` and the field, for anything malformed.
PackageContents decode_package(std::span<const std::byte> bytes, const std::string& label);

// The body's checksum: 64-bit FNV-1a over little-endian 64-bit words, then the remaining
// bytes one at a time (docs/package-format.md).
uint64_t fnv1a64(std::span<const std::byte> bytes);

}  // namespace loom::package
