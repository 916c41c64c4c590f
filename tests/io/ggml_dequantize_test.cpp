// The GGUF block dequantizers against gguf-py's (tests/data/ggml_blocks/make_golden.py).
#include "io/ggml_dequantize.h"

#include <cstring>
#include <fstream>
#include <iterator>

#include "test_util.h"

namespace loom::io {

namespace {

struct GoldenRecord {
  std::string type;
  std::vector<std::byte> bytes;
  std::vector<float> expected;
};

std::vector<GoldenRecord> read_golden() {
  std::ifstream in(std::string(LOOM_TEST_DATA_DIR) + "/ggml_blocks/blocks.bin", std::ios::binary);
  std::vector<char> all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<GoldenRecord> records;
  size_t at = 0;
  while (at + 24 <= all.size()) {
    GoldenRecord r;
    r.type = std::string(all.data() + at, strnlen(all.data() + at, 16));
    uint32_t count, nbytes;
    std::memcpy(&count, all.data() + at + 16, 4);
    std::memcpy(&nbytes, all.data() + at + 20, 4);
    at += 24;
    r.bytes.resize(nbytes);
    std::memcpy(r.bytes.data(), all.data() + at, nbytes);
    at += nbytes;
    r.expected.resize(count);
    std::memcpy(r.expected.data(), all.data() + at, size_t(count) * 4);
    at += size_t(count) * 4;
    records.push_back(std::move(r));
  }
  return records;
}

const GgmlTypeTraits* traits_named(const std::string& name) {
  for (const auto& t : ggml_types())
    if (name == t.name) return &t;
  return nullptr;
}

}  // namespace

TEST(GgmlDequantize, MatchesGgufPyOnRandomBlocks) {
  auto records = read_golden();
  ASSERT_EQ(records.size(), 9u) << "tests/data/ggml_blocks/blocks.bin missing or truncated";
  for (const auto& r : records) {
    const GgmlTypeTraits* traits = traits_named(r.type);
    ASSERT_NE(traits, nullptr) << r.type;
    std::vector<float> out(r.expected.size(), -12345.f);
    dequantize_ggml(traits->type, r.bytes, int64_t(out.size()), out.data());
    // Both sides compute d * scale * code (+ min) in f32 from the same f16 fields; the order
    // of the two products may differ, so allow a few ulps.
    for (size_t i = 0; i < out.size(); ++i)
      ASSERT_NEAR(out[i], r.expected[i], 4e-6f * std::max(1.f, std::fabs(r.expected[i])))
          << r.type << " element " << i;
  }
}

// Every block format in the table of GGUF types has a block decoder: all-zero blocks (zero
// scales and minimums) expand to zeros.
TEST(GgmlDequantize, EveryBlockFormatHasADecoder) {
  for (const GgmlTypeTraits& t : ggml_types()) {
    std::vector<std::byte> bytes(size_t(2 * t.bytes_per_block));
    std::vector<float> out(size_t(2 * t.block_size), -12345.f);
    EXPECT_NO_THROW(dequantize_ggml(t.type, bytes, int64_t(out.size()), out.data())) << t.name;
    for (float v : out) ASSERT_EQ(v, 0.f) << t.name;
  }
}

TEST(GgmlDequantize, RefusesPartialBlocksAndShortData) {
  std::vector<std::byte> bytes(18);  // one Q4_0 block
  std::vector<float> out(64);
  EXPECT_THROW(dequantize_ggml(GgmlType::Q4_0, bytes, 31, out.data()), Error);
  EXPECT_THROW(dequantize_ggml(GgmlType::Q4_0, bytes, 64, out.data()), Error);
  EXPECT_NO_THROW(dequantize_ggml(GgmlType::Q4_0, bytes, 32, out.data()));
}

}  // namespace loom::io
