// XXH64 against other implementations: the spec's published digests of "" and "abc", and the
// content checksums zstd writes (the low 32 bits of XXH64 of the data, `zstd --check`) for
// inputs of every length class the hash treats apart (under 4, 8 and 32 bytes, whole stripes,
// stripes and a tail), also fed in pieces.
#include "package/xxh64.h"

#include <gtest/gtest.h>

#include <vector>

namespace loom::package {
namespace {

// Byte i is (131 i + 7) mod 256. Expected: the last 4 bytes of
// `python3 -c 'import sys; sys.stdout.buffer.write(bytes((i*131+7)&255 for i in range(N)))' |
// zstd -q -c --check`, read little-endian.
std::vector<std::byte> pattern(size_t n) {
  std::vector<std::byte> out(n);
  for (size_t i = 0; i < n; ++i) out[i] = std::byte((i * 131 + 7) & 255);
  return out;
}

TEST(Xxh64, PublishedDigests) {
  EXPECT_EQ(xxh64({}), 0xEF46DB3751D8E999ull);
  const std::vector<std::byte> abc{std::byte{'a'}, std::byte{'b'}, std::byte{'c'}};
  EXPECT_EQ(xxh64(abc), 0x44BC2CF5AD770999ull);
}

TEST(Xxh64, LowBitsMatchZstdContentChecksums) {
  const std::pair<size_t, uint32_t> kZstd[] = {
      {0, 0x51d8e999},  {1, 0xe858bbb7},   {3, 0xee6332bb},    {4, 0x4b3bb23d},   {5, 0xac8e6776},
      {7, 0xd675d2c0},  {8, 0x71ce94dd},   {9, 0x8b983af8},    {15, 0xd2ff8b1d},  {31, 0x306b5d8f},
      {32, 0xbc5d6e25}, {33, 0x4e1cbe9f},  {35, 0x544bc8c9},   {63, 0x066cb6a5},  {64, 0x0411632e},
      {65, 0xff863efc}, {100, 0xd3dc2d8f}, {1000, 0xc82eb373}, {4097, 0x925b884a}};
  for (const auto& [n, want] : kZstd) {
    auto bytes = pattern(n);
    EXPECT_EQ(uint32_t(xxh64(bytes)), want) << n << " bytes";
    // Streamed in uneven pieces: the same digest.
    Xxh64 h;
    for (size_t at = 0, piece = 1; at < n; at += piece, piece = piece * 3 + 1)
      h.update(std::span(bytes).subspan(at, std::min(piece, n - at)));
    EXPECT_EQ(h.digest(), xxh64(bytes)) << n << " bytes streamed";
  }
}

}  // namespace
}  // namespace loom::package
