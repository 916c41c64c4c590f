// QuantScheme checks and names, and the table of GGUF block formats as schemes.
#include <cstring>
#include <string>

#include "io/ggml_types.h"
#include "loom/error.h"
#include "loom/quant.h"

namespace loom::quant {

namespace {

constexpr int8_t kIq4nlTable[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                    1,    13,   25,  38,  53,  69,  89,  113};

QuantScheme block_affine(int bits, AffineOffset offset, int64_t block) {
  QuantScheme s;
  s.bits = bits;
  s.kind = QuantKind::affine;
  s.offset = offset;
  s.granularity = Granularity::per_block;
  s.block_size = block;
  s.scale_dtype = DType::f16;
  return s;
}

QuantScheme k_quant(int bits, AffineOffset offset, int64_t block, int scale_bits) {
  QuantScheme s = block_affine(bits, offset, block);
  s.super_block_size = 256;
  s.scale_bits = scale_bits;
  return s;
}

QuantScheme iq4_nl() {
  QuantScheme s;
  s.bits = 4;
  s.kind = QuantKind::lookup;
  s.granularity = Granularity::per_block;
  s.block_size = 32;
  s.scale_dtype = DType::f16;
  s.table_dtype = DType::f16;  // the integer levels are exact in f16
  s.table_scaled = true;
  return s;
}

using io::GgmlType;

const GgufFormat kFormats[] = {
    {"Q4_0", uint32_t(GgmlType::Q4_0), 32, 18, block_affine(4, AffineOffset::midpoint, 32),
     GgufMapping::exact, "d * (q - 8); d f16 per 32", nullptr},
    {"Q4_1", uint32_t(GgmlType::Q4_1), 32, 20, block_affine(4, AffineOffset::min, 32),
     GgufMapping::exact, "d * q + m; d, m f16 per 32", nullptr},
    {"Q5_0", uint32_t(GgmlType::Q5_0), 32, 22, block_affine(5, AffineOffset::midpoint, 32),
     GgufMapping::exact, "d * (q - 16); d f16 per 32", nullptr},
    {"Q5_1", uint32_t(GgmlType::Q5_1), 32, 24, block_affine(5, AffineOffset::min, 32),
     GgufMapping::exact, "d * q + m; d, m f16 per 32", nullptr},
    // Q8_0 stores signed bytes; as unsigned codes they are q + 128 with the midpoint 128.
    {"Q8_0", uint32_t(GgmlType::Q8_0), 32, 34, block_affine(8, AffineOffset::midpoint, 32),
     GgufMapping::exact, "d * q (q signed byte); d f16 per 32", nullptr},
    {"Q4_K", uint32_t(GgmlType::Q4_K), 256, 144, k_quant(4, AffineOffset::min, 32, 6),
     GgufMapping::repacked, "d * sc * q - dmin * m; sc, m 6-bit per 32; d, dmin f16 per 256",
     nullptr},
    {"Q5_K", uint32_t(GgmlType::Q5_K), 256, 176, k_quant(5, AffineOffset::min, 32, 6),
     GgufMapping::repacked, "d * sc * q - dmin * m; sc, m 6-bit per 32; d, dmin f16 per 256",
     nullptr},
    {"Q6_K", uint32_t(GgmlType::Q6_K), 256, 210, k_quant(6, AffineOffset::midpoint, 16, 8),
     GgufMapping::repacked, "d * sc * (q - 32); sc int8 per 16; d f16 per 256", nullptr},
    {"IQ4_NL", uint32_t(GgmlType::IQ4_NL), 32, 18, iq4_nl(), GgufMapping::exact,
     "d * table[q]; fixed 16-entry table; d f16 per 32", kIq4nlTable},
};

bool one_of(int64_t v, std::initializer_list<int64_t> allowed) {
  for (int64_t a : allowed)
    if (v == a) return true;
  return false;
}

const char* granularity_name(Granularity g) {
  switch (g) {
    case Granularity::per_tensor:
      return "per_tensor";
    case Granularity::per_channel:
      return "per_channel";
    case Granularity::per_block:
      return "per_block";
  }
  return "?";
}

}  // namespace

void QuantScheme::validate() const {
  auto bad = [&](const std::string& why) { fail(ErrorKind::value, "quant scheme: " + why); };
  if (!one_of(bits, {4, 5, 6, 8})) bad("bits must be 4, 5, 6 or 8, not " + std::to_string(bits));
  if (granularity == Granularity::per_block) {
    if (!one_of(block_size, {16, 32, 64, 128, 256}))
      bad("block size must be 32, 64, 128 or 256 (16 for Q6_K), not " + std::to_string(block_size));
  } else if (block_size != 0) {
    bad("a block size needs per_block granularity");
  }
  if (super_block_size != 0) {
    if (granularity != Granularity::per_block || super_block_size % block_size != 0 ||
        super_block_size <= block_size)
      bad("a super-block must be a multiple of the block size");
    if (scale_bits < 2 || scale_bits > 8) bad("super-block scales need 2..8 scale bits");
  } else if (scale_bits != 0) {
    bad("scale bits need a super-block");
  }
  if (!is_float(scale_dtype)) bad("scales must be a float dtype");
  if (kind == QuantKind::lookup && table_dtype != DType::f16 && table_dtype != DType::f32)
    bad("a lookup table must be f16 or f32");
  if (kind == QuantKind::lookup && bits != 4 && bits != 8)
    bad("a lookup table has 16 or 256 entries (4 or 8 bits)");
}

std::string QuantScheme::describe() const {
  std::string s;
  if (kind == QuantKind::affine) {
    s = "affine int" + std::to_string(bits) + " ";
    s += offset == AffineOffset::midpoint     ? "symmetric"
         : offset == AffineOffset::zero_point ? "zero_point"
                                              : "min";
  } else {
    s = "lut" + std::to_string(bits) + " " + dtype_name(table_dtype);
    if (table_scaled) s += " scaled";
  }
  s += std::string(" ") + granularity_name(granularity);
  if (granularity == Granularity::per_block) s += "(" + std::to_string(block_size) + ")";
  if (super_block_size)
    s += " super(" + std::to_string(super_block_size) + ", " + std::to_string(scale_bits) +
         "-bit scales)";
  return s;
}

std::span<const GgufFormat> gguf_formats() { return kFormats; }

const GgufFormat* find_gguf_format(std::string_view name) {
  for (const GgufFormat& f : kFormats)
    if (name == f.name) return &f;
  return nullptr;
}

const GgufFormat* find_gguf_format(uint32_t ggml_type) {
  for (const GgufFormat& f : kFormats)
    if (f.ggml_type == ggml_type) return &f;
  return nullptr;
}

}  // namespace loom::quant
