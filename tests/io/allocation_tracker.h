// Records the largest single allocation through operator new while tracking is on, so that
// the reader fuzz test can prove a hostile length never becomes a huge allocation. The
// replacement operators live in allocation_tracker.cpp (linked into loom_tests).
#pragma once

#include <cstddef>

namespace loom::test {

void start_tracking_allocations();  // resets the largest size to 0
void stop_tracking_allocations();
size_t largest_allocation();

}  // namespace loom::test
