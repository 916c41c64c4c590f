// Replaces the global operator new/delete (which the standard allows) in the test binary;
// outside tracking it costs one relaxed atomic load per allocation.
#include "io/allocation_tracker.h"

#include <atomic>
#include <cstdlib>
#include <new>

// GCC cannot see that these operators are malloc-backed.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

namespace {
std::atomic<bool> g_tracking{false};
std::atomic<size_t> g_largest{0};
}  // namespace

namespace loom::test {
void start_tracking_allocations() {
  g_largest.store(0);
  g_tracking.store(true);
}
void stop_tracking_allocations() { g_tracking.store(false); }
size_t largest_allocation() { return g_largest.load(); }
}  // namespace loom::test

void* operator new(size_t n) {
  if (g_tracking.load(std::memory_order_relaxed) && n > g_largest.load(std::memory_order_relaxed))
    g_largest.store(n, std::memory_order_relaxed);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void* operator new[](size_t n) { return operator new(n); }
void* operator new(size_t n, const std::nothrow_t&) noexcept {
  try {
    return operator new(n);
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](size_t n, const std::nothrow_t&) noexcept {
  return operator new(n, std::nothrow);
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
