// The tensor types of GGUF files (ggml's type ids), as one table with a row per type, as
// ggml's own type traits are: a reader or a dequantizer asks the table for the block size and
// bytes per block instead of switching on the type.
#pragma once

#include <cstdint>
#include <span>
#include <string>

namespace loom::io {

// ggml's type ids (ggml.h `enum ggml_type`); the numbers are what GGUF files store.
enum class GgmlType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  IQ4_NL = 20,
  BF16 = 30,
};

// One row of the table. A tensor of this type is stored as numel / block_size blocks of
// bytes_per_block bytes each; a row (ne[0] elements) holds whole blocks.
struct GgmlTypeTraits {
  GgmlType type;
  const char* name;         // as ggml and gguf-py spell it: "Q4_K"
  int64_t block_size;       // elements per block
  int64_t bytes_per_block;  // bytes per block
  bool is_quantized;
  uint32_t id() const { return static_cast<uint32_t>(type); }
};

// Every type Loom reads, in ggml id order.
std::span<const GgmlTypeTraits> ggml_types();
// The row for a type id, or nullptr when Loom does not read that type.
const GgmlTypeTraits* find_ggml_type(uint32_t id);
const GgmlTypeTraits& ggml_type_traits(GgmlType type);
// A readable name for any id: the supported ones, the other types ggml defines ("Q2_K"), or
// "unknown type 99" — for error messages.
std::string ggml_type_name(uint32_t id);

}  // namespace loom::io
