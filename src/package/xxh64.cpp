// XXH64 as the xxHash specification gives it (seed 0, little-endian reads).
#include "package/xxh64.h"

#include <bit>
#include <cstring>

namespace loom::package {

namespace {

constexpr uint64_t kP1 = 0x9E3779B185EBCA87ull;
constexpr uint64_t kP2 = 0xC2B2AE3D27D4EB4Full;
constexpr uint64_t kP3 = 0x165667B19E3779F9ull;
constexpr uint64_t kP4 = 0x85EBCA77C2B2AE63ull;
constexpr uint64_t kP5 = 0x27D4EB2F165667C5ull;

uint64_t load64(const std::byte* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}
uint32_t load32(const std::byte* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
uint64_t round(uint64_t acc, uint64_t input) {
  acc += input * kP2;
  acc = std::rotl(acc, 31);
  return acc * kP1;
}
uint64_t merge(uint64_t acc, uint64_t lane) {
  acc ^= round(0, lane);
  return acc * kP1 + kP4;
}
void stripes(uint64_t (&lanes)[4], const std::byte* p, size_t count) {
  uint64_t a = lanes[0], b = lanes[1], c = lanes[2], d = lanes[3];
  for (size_t i = 0; i < count; ++i, p += 32) {
    a = round(a, load64(p));
    b = round(b, load64(p + 8));
    c = round(c, load64(p + 16));
    d = round(d, load64(p + 24));
  }
  lanes[0] = a, lanes[1] = b, lanes[2] = c, lanes[3] = d;
}

}  // namespace

void Xxh64::update(std::span<const std::byte> bytes) {
  if (bytes.empty()) return;  // its data() may be null, which memcpy forbids even for 0 bytes
  total_ += bytes.size();
  const std::byte* p = bytes.data();
  size_t n = bytes.size();
  if (pending_bytes_ > 0) {
    size_t take = std::min(n, 32 - pending_bytes_);
    std::memcpy(pending_ + pending_bytes_, p, take);
    pending_bytes_ += take, p += take, n -= take;
    if (pending_bytes_ < 32) return;
    stripes(lanes_, pending_, 1);
    pending_bytes_ = 0;
  }
  stripes(lanes_, p, n / 32);
  p += n / 32 * 32, n %= 32;
  std::memcpy(pending_, p, n);
  pending_bytes_ = n;
}

uint64_t Xxh64::digest() const {
  uint64_t h;
  if (total_ >= 32) {
    h = std::rotl(lanes_[0], 1) + std::rotl(lanes_[1], 7) + std::rotl(lanes_[2], 12) +
        std::rotl(lanes_[3], 18);
    for (uint64_t lane : lanes_) h = merge(h, lane);
  } else {
    h = lanes_[2] + kP5;  // lane 3 starts at the seed
  }
  h += total_;
  const std::byte* p = pending_;
  size_t n = pending_bytes_;
  for (; n >= 8; p += 8, n -= 8) h = std::rotl(h ^ round(0, load64(p)), 27) * kP1 + kP4;
  if (n >= 4) {
    h = std::rotl(h ^ (uint64_t(load32(p)) * kP1), 23) * kP2 + kP3;
    p += 4, n -= 4;
  }
  for (; n > 0; ++p, --n) h = std::rotl(h ^ (uint64_t(*p) * kP5), 11) * kP1;
  h ^= h >> 33;
  h *= kP2;
  h ^= h >> 29;
  h *= kP3;
  h ^= h >> 32;
  return h;
}

uint64_t xxh64(std::span<const std::byte> bytes) {
  Xxh64 h;
  h.update(bytes);
  return h.digest();
}

}  // namespace loom::package
