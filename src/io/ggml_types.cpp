#include "io/ggml_types.h"

#include <array>

#include "loom/error.h"

namespace loom::io {

namespace {

// Block layouts (ggml-common.h): Q4_0 = f16 scale + 32 nibbles; Q4_1 adds an f16 minimum;
// Q5_0/Q5_1 add 32 high bits; Q8_0 = f16 scale + 32 bytes; the K-quants hold 256 elements in
// super-blocks with 6-bit sub-block scales; IQ4_NL is Q4_0's layout with a lookup table.
constexpr std::array<GgmlTypeTraits, 12> kTypes{{
    {GgmlType::F32, "F32", 1, 4, false},
    {GgmlType::F16, "F16", 1, 2, false},
    {GgmlType::Q4_0, "Q4_0", 32, 2 + 16, true},
    {GgmlType::Q4_1, "Q4_1", 32, 2 + 2 + 16, true},
    {GgmlType::Q5_0, "Q5_0", 32, 2 + 4 + 16, true},
    {GgmlType::Q5_1, "Q5_1", 32, 2 + 2 + 4 + 16, true},
    {GgmlType::Q8_0, "Q8_0", 32, 2 + 32, true},
    {GgmlType::Q4_K, "Q4_K", 256, 2 + 2 + 12 + 128, true},
    {GgmlType::Q5_K, "Q5_K", 256, 2 + 2 + 12 + 32 + 128, true},
    {GgmlType::Q6_K, "Q6_K", 256, 128 + 64 + 16 + 2, true},
    {GgmlType::IQ4_NL, "IQ4_NL", 32, 2 + 16, true},
    {GgmlType::BF16, "BF16", 1, 2, false},
}};

// Names of the ggml types Loom does not read, indexed by id (empty: no such id).
constexpr std::array<const char*, 40> kAllNames{
    "F32",   "F16",        "Q4_0",       "Q4_1",       "Q4_2",     "Q4_3",     "Q5_0",
    "Q5_1",  "Q8_0",       "Q8_1",       "Q2_K",       "Q3_K",     "Q4_K",     "Q5_K",
    "Q6_K",  "Q8_K",       "IQ2_XXS",    "IQ2_XS",     "IQ3_XXS",  "IQ1_S",    "IQ4_NL",
    "IQ3_S", "IQ2_S",      "IQ4_XS",     "I8",         "I16",      "I32",      "I64",
    "F64",   "IQ1_M",      "BF16",       "Q4_0_4_4",   "Q4_0_4_8", "Q4_0_8_8", "TQ1_0",
    "TQ2_0", "IQ4_NL_4_4", "IQ4_NL_4_8", "IQ4_NL_8_8", "MXFP4"};

}  // namespace

std::span<const GgmlTypeTraits> ggml_types() { return kTypes; }

const GgmlTypeTraits* find_ggml_type(uint32_t id) {
  for (const auto& row : kTypes)
    if (row.id() == id) return &row;
  return nullptr;
}

const GgmlTypeTraits& ggml_type_traits(GgmlType type) {
  const GgmlTypeTraits* row = find_ggml_type(static_cast<uint32_t>(type));
  if (!row)
    fail(ErrorKind::internal,
         "no table row for ggml type " + ggml_type_name(static_cast<uint32_t>(type)));
  return *row;
}

std::string ggml_type_name(uint32_t id) {
  if (id < kAllNames.size()) return kAllNames[id];
  return "unknown type " + std::to_string(id);
}

}  // namespace loom::io
