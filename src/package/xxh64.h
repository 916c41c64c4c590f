// XXH64 (xxHash's 64-bit hash, seed 0): the checksum of a package's referenced weight files.
// It reads four independent 64-bit lanes per 32 bytes, so it runs at memory speed (several
// GB/s) where a serial FNV-1a over words is bound by one multiply's latency per word, and its
// final mix lets every input bit reach every output bit. Streaming, so a file can be hashed
// in pieces. Spec: https://github.com/Cyan4973/xxHash/blob/dev/doc/xxhash_spec.md
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace loom::package {

class Xxh64 {
 public:
  void update(std::span<const std::byte> bytes);
  uint64_t digest() const;

 private:
  uint64_t lanes_[4] = {0x60ea27eeadc0b5d6ull, 0xc2b2ae3d27d4eb4full, 0ull,
                        0x61c8864e7a143579ull};  // seed 0 + primes, as the spec starts them
  std::byte pending_[32] = {};
  size_t pending_bytes_ = 0;
  uint64_t total_ = 0;
};

uint64_t xxh64(std::span<const std::byte> bytes);

}  // namespace loom::package
