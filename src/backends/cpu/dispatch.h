// CPU kernel helpers: the element access of core/element_access.h under the CPU's names,
// index loads, and an OpenMP parallel loop.
#pragma once

#include <cstdint>
#include <type_traits>

#include "core/element_access.h"
#include "loom/dtype.h"
#include "loom/error.h"

namespace loom::cpu {

using element::bf16_t;
using element::compute_t;
using element::dispatch_all;
using element::dispatch_float;
using element::f16_t;
using element::load;
using element::store;

// Reads element i of an integer index tensor (i32 or i64).
inline int64_t load_index(const void* data, DType dtype, int64_t i) {
  return dtype == DType::i32 ? int64_t(static_cast<const int32_t*>(data)[i])
                             : static_cast<const int64_t*>(data)[i];
}

// Work below this many elements stays on one thread.
inline constexpr int64_t kParallelGrain = 1 << 15;

template <class Fn>
void parallel_for(int64_t n, int64_t grain, Fn&& fn) {
#if defined(_OPENMP)
  if (n >= grain * 2) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) fn(i);
    return;
  }
#endif
  (void)grain;
  for (int64_t i = 0; i < n; ++i) fn(i);
}

}  // namespace loom::cpu
