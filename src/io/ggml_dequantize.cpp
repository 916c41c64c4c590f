// The block layouts follow GGUF's specification of each type: a block of 32 (or, for the
// K-quants, a super-block of 256) elements holds f16 scales followed by packed codes. Within
// a 32-element block of 4-bit codes, byte j holds element j in its low nibble and element
// j + 16 in its high nibble.
#include "io/ggml_dequantize.h"

#include <cstring>
#include <string>

#include "loom/error.h"
#include "loom/half.h"

namespace loom::io {

namespace {

float f16_at(const uint8_t* p) {
  uint16_t bits;
  std::memcpy(&bits, p, 2);
  return f16_to_float(bits);
}

// IQ4_NL's fixed non-uniform table of 16 levels (times the block scale).
constexpr int8_t kIq4nlLevels[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                     1,    13,   25,  38,  53,  69,  89,  113};

// Q4_0: d (f16), 16 bytes of codes; value = d * (code - 8).
void q4_0(const uint8_t* b, float* y) {
  const float d = f16_at(b);
  const uint8_t* q = b + 2;
  for (int j = 0; j < 16; ++j) {
    y[j] = d * float((q[j] & 0x0F) - 8);
    y[j + 16] = d * float((q[j] >> 4) - 8);
  }
}

// Q4_1: d, m (f16), 16 bytes of codes; value = d * code + m.
void q4_1(const uint8_t* b, float* y) {
  const float d = f16_at(b), m = f16_at(b + 2);
  const uint8_t* q = b + 4;
  for (int j = 0; j < 16; ++j) {
    y[j] = d * float(q[j] & 0x0F) + m;
    y[j + 16] = d * float(q[j] >> 4) + m;
  }
}

// Q5_0 / Q5_1: 4 bytes of fifth bits (bit j of the little-endian word for element j), then
// 16 bytes of low nibbles; Q5_0's value = d * (code - 16), Q5_1's = d * code + m.
template <bool has_min>
void q5(const uint8_t* b, float* y) {
  const float d = f16_at(b);
  const float m = has_min ? f16_at(b + 2) : 0.f;
  const uint8_t* p = b + (has_min ? 4 : 2);
  uint32_t high;
  std::memcpy(&high, p, 4);
  const uint8_t* q = p + 4;
  const int offset = has_min ? 0 : 16;
  for (int j = 0; j < 16; ++j) {
    int lo = (q[j] & 0x0F) | int((high >> j) & 1u) << 4;
    int hi = (q[j] >> 4) | int((high >> (j + 16)) & 1u) << 4;
    y[j] = d * float(lo - offset) + m;
    y[j + 16] = d * float(hi - offset) + m;
  }
}

// Q8_0: d (f16), 32 signed bytes; value = d * code.
void q8_0(const uint8_t* b, float* y) {
  const float d = f16_at(b);
  const int8_t* q = reinterpret_cast<const int8_t*>(b + 2);
  for (int j = 0; j < 32; ++j) y[j] = d * float(q[j]);
}

void iq4_nl(const uint8_t* b, float* y) {
  const float d = f16_at(b);
  const uint8_t* q = b + 2;
  for (int j = 0; j < 16; ++j) {
    y[j] = d * float(kIq4nlLevels[q[j] & 0x0F]);
    y[j + 16] = d * float(kIq4nlLevels[q[j] >> 4]);
  }
}

// The K-quants' eight 6-bit sub-block scales and mins, packed in 12 bytes: sub-blocks 0-3
// keep theirs in the low 6 bits of bytes 0-3 (scales) and 4-7 (mins); sub-blocks 4-7 keep
// their low 4 bits in bytes 8-11 and their top 2 bits in the spare top bits of bytes 0-7.
void k_scale_min(int j, const uint8_t* s, int& scale, int& min) {
  if (j < 4) {
    scale = s[j] & 63;
    min = s[j + 4] & 63;
  } else {
    scale = (s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4);
    min = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
  }
}

// Q4_K: d, dmin (f16), 12 bytes of scales, 128 bytes of codes for 256 elements. Each 64
// elements read 32 bytes: low nibbles for the first 32 (sub-block 2i), high for the next.
// value = d * scale * code - dmin * min.
void q4_k(const uint8_t* b, float* y) {
  const float d = f16_at(b), dmin = f16_at(b + 2);
  const uint8_t* scales = b + 4;
  const uint8_t* q = b + 16;
  for (int chunk = 0; chunk < 4; ++chunk, q += 32, y += 64) {
    int s0, m0, s1, m1;
    k_scale_min(2 * chunk, scales, s0, m0);
    k_scale_min(2 * chunk + 1, scales, s1, m1);
    for (int l = 0; l < 32; ++l) {
      y[l] = d * float(s0) * float(q[l] & 0x0F) - dmin * float(m0);
      y[l + 32] = d * float(s1) * float(q[l] >> 4) - dmin * float(m1);
    }
  }
}

// Q5_K: as Q4_K plus 32 bytes of fifth bits: element l of chunk c takes bit 2c (first 32)
// or 2c + 1 (next 32) of byte l.
void q5_k(const uint8_t* b, float* y) {
  const float d = f16_at(b), dmin = f16_at(b + 2);
  const uint8_t* scales = b + 4;
  const uint8_t* high = b + 16;
  const uint8_t* q = b + 48;
  for (int chunk = 0; chunk < 4; ++chunk, q += 32, y += 64) {
    int s0, m0, s1, m1;
    k_scale_min(2 * chunk, scales, s0, m0);
    k_scale_min(2 * chunk + 1, scales, s1, m1);
    const uint8_t bit0 = uint8_t(1u << (2 * chunk)), bit1 = uint8_t(2u << (2 * chunk));
    for (int l = 0; l < 32; ++l) {
      int lo = (q[l] & 0x0F) + ((high[l] & bit0) ? 16 : 0);
      int hi = (q[l] >> 4) + ((high[l] & bit1) ? 16 : 0);
      y[l] = d * float(s0) * float(lo) - dmin * float(m0);
      y[l + 32] = d * float(s1) * float(hi) - dmin * float(m1);
    }
  }
}

// Q6_K: 128 bytes of low nibbles, 64 bytes of high 2-bit pairs, 16 signed 8-bit scales (one
// per 16 elements), d (f16) last. Each half of 128 elements reads 64 low bytes and 32 high
// bytes: element l + 32k takes the nibble of low byte l (k even) or l + 32 (k odd), low for
// k < 2, high for k >= 2, and bits 2k..2k+1 of high byte l. value = d * scale * (code - 32).
void q6_k(const uint8_t* b, float* y) {
  const uint8_t* low = b;
  const uint8_t* high = b + 128;
  const int8_t* scales = reinterpret_cast<const int8_t*>(b + 192);
  const float d = f16_at(b + 208);
  for (int half = 0; half < 2; ++half, low += 64, high += 32, scales += 8, y += 128) {
    for (int l = 0; l < 32; ++l) {
      const int group = l / 16;
      int q0 = ((low[l] & 0x0F) | ((high[l] >> 0) & 3) << 4) - 32;
      int q1 = ((low[l + 32] & 0x0F) | ((high[l] >> 2) & 3) << 4) - 32;
      int q2 = ((low[l] >> 4) | ((high[l] >> 4) & 3) << 4) - 32;
      int q3 = ((low[l + 32] >> 4) | ((high[l] >> 6) & 3) << 4) - 32;
      y[l] = d * float(scales[group + 0]) * float(q0);
      y[l + 32] = d * float(scales[group + 2]) * float(q1);
      y[l + 64] = d * float(scales[group + 4]) * float(q2);
      y[l + 96] = d * float(scales[group + 6]) * float(q3);
    }
  }
}

// Each block format's decoder: one block of bytes_per_block bytes to block_size floats. Keyed
// by the rows of ggml_types() (io/ggml_types.h); a block format added there needs its row
// here (GgmlDequantize.EveryBlockFormatHasADecoder checks). The table of formats itself stays
// free of the decoders, so the readers (and their fuzzers) do not link them.
using BlockDecoder = void (*)(const uint8_t*, float*);

struct BlockDecoderRow {
  GgmlType type;
  BlockDecoder decode;
};

constexpr BlockDecoderRow kBlockDecoders[]{
    {GgmlType::Q4_0, q4_0},     {GgmlType::Q4_1, q4_1}, {GgmlType::Q5_0, q5<false>},
    {GgmlType::Q5_1, q5<true>}, {GgmlType::Q8_0, q8_0}, {GgmlType::Q4_K, q4_k},
    {GgmlType::Q5_K, q5_k},     {GgmlType::Q6_K, q6_k}, {GgmlType::IQ4_NL, iq4_nl},
};

BlockDecoder decoder_for(GgmlType type) {
  for (const BlockDecoderRow& row : kBlockDecoders)
    if (row.type == type) return row.decode;
  return nullptr;
}

}  // namespace

void dequantize_ggml(GgmlType type, std::span<const std::byte> bytes, int64_t count, float* out) {
  const GgmlTypeTraits& traits = ggml_type_traits(type);
  if (count < 0 || count % traits.block_size != 0)
    fail(ErrorKind::io, std::string(traits.name) + ": " + std::to_string(count) +
                            " elements are not a whole number of blocks of " +
                            std::to_string(traits.block_size));
  const int64_t blocks = count / traits.block_size;
  if (uint64_t(bytes.size()) < uint64_t(blocks) * uint64_t(traits.bytes_per_block))
    fail(ErrorKind::io, std::string(traits.name) + ": " + std::to_string(bytes.size()) +
                            " bytes hold fewer than " + std::to_string(count) + " elements");
  const auto* src = reinterpret_cast<const uint8_t*>(bytes.data());
  switch (type) {
    case GgmlType::F32:
      std::memcpy(out, src, size_t(count) * 4);
      return;
    case GgmlType::F16:
      for (int64_t i = 0; i < count; ++i) out[i] = f16_at(src + 2 * i);
      return;
    case GgmlType::BF16:
      for (int64_t i = 0; i < count; ++i) {
        uint16_t bits;
        std::memcpy(&bits, src + 2 * i, 2);
        out[i] = bf16_to_float(bits);
      }
      return;
    default:
      break;
  }
  BlockDecoder decode = decoder_for(type);
  if (!decode) fail(ErrorKind::unsupported, std::string("cannot expand ") + traits.name);
#pragma omp parallel for schedule(static) if (blocks > 4096)
  for (int64_t b = 0; b < blocks; ++b)
    decode(src + b * traits.bytes_per_block, out + b * traits.block_size);
}

}  // namespace loom::io
