// The table of GGUF formats against the GGUF type table and the reference dequantizers.
#include <cstring>

#include "io/ggml_dequantize.h"
#include "io/ggml_types.h"
#include "loom/half.h"
#include "loom/quant.h"
#include "test_util.h"

namespace loom::quant {

TEST(GgufFormats, AgreeWithTheTypeTable) {
  for (const GgufFormat& f : gguf_formats()) {
    SCOPED_TRACE(f.name);
    const io::GgmlTypeTraits* t = io::find_ggml_type(f.ggml_type);
    ASSERT_NE(t, nullptr);
    EXPECT_STREQ(t->name, f.name);
    EXPECT_EQ(t->block_size, f.block_size);
    EXPECT_EQ(t->bytes_per_block, f.block_bytes);
    EXPECT_NO_THROW(f.scheme.validate());
    EXPECT_EQ(find_gguf_format(f.name), &f);
    EXPECT_EQ(find_gguf_format(f.ggml_type), &f);
  }
  EXPECT_EQ(find_gguf_format("Q3_K"), nullptr);
}

TEST(GgufFormats, SchemesAccountForEveryByteOfABlock) {
  // Codes, plus per block an f16 scale (and min), or for super-blocks packed integer scales
  // (and mins) per block plus f16 scale (and min) per super-block.
  for (const GgufFormat& f : gguf_formats()) {
    SCOPED_TRACE(f.name);
    const QuantScheme& s = f.scheme;
    const bool has_min = s.kind == QuantKind::affine && s.offset == AffineOffset::min;
    const int64_t per_scale = has_min ? 2 : 1;
    int64_t bytes = f.block_size * s.bits / 8;
    if (s.super_block_size) {
      EXPECT_EQ(s.super_block_size, f.block_size);
      bytes += (s.super_block_size / s.block_size) * s.scale_bits * per_scale / 8 + 2 * per_scale;
    } else {
      EXPECT_EQ(s.block_size, f.block_size);
      bytes += 2 * per_scale;
    }
    EXPECT_EQ(bytes, f.block_bytes);
  }
}

TEST(GgufFormats, Iq4nlTableIsWhatTheDequantizerUses) {
  const GgufFormat* f = find_gguf_format("IQ4_NL");
  ASSERT_NE(f, nullptr);
  ASSERT_NE(f->table, nullptr);
  // d = 1, byte j = code j (low) and code 15 - j (high).
  uint8_t block[18];
  const uint16_t one = float_to_f16(1.f);
  std::memcpy(block, &one, 2);
  for (int j = 0; j < 16; ++j) block[2 + j] = uint8_t(j | ((15 - j) << 4));
  float out[32];
  io::dequantize_ggml(io::GgmlType::IQ4_NL, std::as_bytes(std::span(block)), 32, out);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(out[j], float(f->table[j]));
    EXPECT_EQ(out[j + 16], float(f->table[15 - j]));
  }
}

TEST(GgufFormats, DescribeNamesTheScheme) {
  EXPECT_EQ(find_gguf_format("Q4_1")->scheme.describe(), "affine int4 min per_block(32)");
  EXPECT_EQ(find_gguf_format("Q6_K")->scheme.describe(),
            "affine int6 symmetric per_block(16) super(256, 8-bit scales)");
  EXPECT_EQ(find_gguf_format("IQ4_NL")->scheme.describe(), "lut4 f16 scaled per_block(32)");
}

}  // namespace loom::quant
