// Linear index -> per-operand element offsets for strided and broadcast access. The host
// collapses dims first, so most kernels see rank 1 or 2 and pay few divisions.
#pragma once

#include <array>
#include <cstdint>

#include "loom/error.h"
#include "loom/shape.h"

namespace loom::cuda {

inline constexpr int kMaxDims = 8;

template <int N>
struct StridedIndexer {
  int rank = 0;
  int64_t extent[kMaxDims] = {};
  int64_t stride[N][kMaxDims] = {};

  __device__ __forceinline__ void offsets(int64_t linear, int64_t (&off)[N]) const {
#pragma unroll
    for (int k = 0; k < N; ++k) off[k] = 0;
    for (int d = rank - 1; d >= 0; --d) {
      int64_t e = extent[d];
      int64_t q = linear / e;
      int64_t i = linear - q * e;
      linear = q;
#pragma unroll
      for (int k = 0; k < N; ++k) off[k] += i * stride[k][d];
    }
  }
};

// Strides of `in` seen through numpy broadcasting to `out` (0 on stretched or missing dims).
inline Strides broadcast_strides(const Extents& in, const Extents& out) {
  Strides contiguous = contiguous_strides(in);
  Strides s(out.size(), 0);
  size_t offset = out.size() - in.size();
  for (size_t d = 0; d < in.size(); ++d) s[d + offset] = in[d] == 1 ? 0 : contiguous[d];
  return s;
}

// Drops size-one dims and merges neighbours that every operand walks contiguously, then
// packs the result for a kernel. Throws when more than kMaxDims dims remain.
template <int N>
StridedIndexer<N> make_indexer(const Extents& extents, const std::array<Strides, N>& strides) {
  Extents e;
  std::array<Strides, N> s;
  for (size_t d = 0; d < extents.size(); ++d) {
    if (extents[d] == 1) continue;
    if (!e.empty()) {
      bool mergeable = true;
      for (int k = 0; k < N; ++k)
        if (s[k].back() != strides[k][d] * extents[d]) mergeable = false;
      if (mergeable) {
        e.back() *= extents[d];
        for (int k = 0; k < N; ++k) s[k].back() = strides[k][d];
        continue;
      }
    }
    e.push_back(extents[d]);
    for (int k = 0; k < N; ++k) s[k].push_back(strides[k][d]);
  }
  if (e.size() > size_t(kMaxDims))
    fail(ErrorKind::unsupported, "CUDA kernels index at most " + std::to_string(kMaxDims) +
                                     " non-mergeable dims, got " + to_string(extents));
  StridedIndexer<N> ix;
  ix.rank = int(e.size());
  for (size_t d = 0; d < e.size(); ++d) {
    ix.extent[d] = e[d];
    for (int k = 0; k < N; ++k) ix.stride[k][d] = s[k][d];
  }
  return ix;
}

}  // namespace loom::cuda
