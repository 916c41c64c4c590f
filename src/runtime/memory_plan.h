// Places intermediates in one arena from their lifetimes: two values share bytes only
// when their lifetimes do not overlap.
#pragma once

#include <cstddef>
#include <vector>

namespace loom::runtime {

struct Lifetime {
  size_t bytes = 0;
  int first = 0;  // step that writes the value
  int last = 0;   // last step that reads it (inclusive)
};

struct ArenaLayout {
  std::vector<size_t> offsets;  // one per lifetime
  size_t total_bytes = 0;
  size_t unshared_bytes = 0;  // what the values take without reuse
};

inline constexpr size_t kArenaAlignment = 256;

ArenaLayout plan_arena(const std::vector<Lifetime>& values);

}  // namespace loom::runtime
