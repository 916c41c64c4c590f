// Strided copies for the CPU data-movement kernels (transpose, broadcast_to, slice,
// dynamic_slice, slice_update). They move bytes, not values, so one routine serves every
// dtype whose elements are whole bytes.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>

#include "backends/backend.h"
#include "backends/cpu/dispatch.h"

namespace loom::cpu {

// Bytes per element; packed dtypes (i4/u4) have no addressable elements to move.
inline size_t element_bytes(DType dtype, const char* op) {
  const DTypeInfo& info = dtype_info(dtype);
  if (info.bits % 8 != 0)
    fail(ErrorKind::unsupported,
         std::string(op) + ": the CPU kernel does not move packed dtype " + info.name);
  return size_t(info.bits / 8);
}

// Kernels keep per-dim arrays on the stack so that a run allocates nothing.
inline constexpr int kMaxCopyRank = 16;

inline void check_copy_rank(int rank, const char* op) {
  if (rank > kMaxCopyRank)
    fail(ErrorKind::unsupported,
         std::string(op) + ": the CPU kernel supports rank <= " + std::to_string(kMaxCopyRank) +
             ", got " + std::to_string(rank));
}

// Element i of an n-d walk is read at src + Σ i_d·src[d] and written at dst + Σ i_d·dst[d]
// (strides in elements; zero strides broadcast).
struct CopyLayout {
  int rank = 0;
  int64_t extent[kMaxCopyRank];
  int64_t dst[kMaxCopyRank];
  int64_t src[kMaxCopyRank];
};

// Row-major strides of `extents` (rank <= kMaxCopyRank) into `strides`.
inline void contiguous_strides_into(const Extents& extents, int64_t* strides) {
  int64_t s = 1;
  for (int d = int(extents.size()) - 1; d >= 0; --d) {
    strides[d] = s;
    s *= extents[size_t(d)];
  }
}

namespace detail {

template <size_t kBytes>
void copy_run(char* dst, int64_t dst_step, const char* src, int64_t src_step, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    std::memcpy(dst + i * dst_step * int64_t(kBytes), src + i * src_step * int64_t(kBytes), kBytes);
}

inline void copy_run_bytes(char* dst, int64_t dst_step, const char* src, int64_t src_step,
                           int64_t n, size_t bytes) {
  if (dst_step == 1 && src_step == 1) {
    std::memcpy(dst, src, size_t(n) * bytes);
    return;
  }
  // The element size picks a fixed-size move; this is not a switch over dtypes.
  if (bytes == 1) return copy_run<1>(dst, dst_step, src, src_step, n);
  if (bytes == 2) return copy_run<2>(dst, dst_step, src, src_step, n);
  if (bytes == 4) return copy_run<4>(dst, dst_step, src, src_step, n);
  if (bytes == 8) return copy_run<8>(dst, dst_step, src, src_step, n);
  for (int64_t i = 0; i < n; ++i)
    std::memcpy(dst + i * dst_step * int64_t(bytes), src + i * src_step * int64_t(bytes), bytes);
}

// Drops size-one dims and merges neighbours that are contiguous on both sides, so that a
// slice of leading rows or a broadcast of whole rows becomes a few long runs.
inline CopyLayout simplify(const CopyLayout& in) {
  CopyLayout out;
  for (int d = 0; d < in.rank; ++d) {
    if (in.extent[d] == 1) continue;
    int last = out.rank - 1;
    if (last >= 0 && out.dst[last] == in.extent[d] * in.dst[d] &&
        out.src[last] == in.extent[d] * in.src[d]) {
      out.extent[last] *= in.extent[d];
      out.dst[last] = in.dst[d];
      out.src[last] = in.src[d];
      continue;
    }
    out.extent[out.rank] = in.extent[d];
    out.dst[out.rank] = in.dst[d];
    out.src[out.rank] = in.src[d];
    ++out.rank;
  }
  return out;
}

// Square tiles for copies that turn the input's contiguous axis into a strided one (a
// transpose of the last axis): both sides of a tile stay in cache, where a row-by-row walk
// would touch a new cache line for every element it reads.
inline constexpr int64_t kTile = 32;

template <size_t kBytes>
void copy_tiles(char* dst, const char* src, const CopyLayout& c, int k) {
  int inner = c.rank - 1;
  int64_t rows = c.extent[k], cols = c.extent[inner];
  int64_t row_tiles = (rows + kTile - 1) / kTile, col_tiles = (cols + kTile - 1) / kTile;
  int64_t planes = 1;
  for (int d = 0; d < inner; ++d)
    if (d != k) planes *= c.extent[d];
  int64_t tiles = planes * row_tiles * col_tiles;
  parallel_for(tiles, std::max<int64_t>(1, kParallelGrain / (kTile * kTile)), [&](int64_t t) {
    int64_t col_tile = t % col_tiles, row_tile = (t / col_tiles) % row_tiles;
    int64_t rest = t / (col_tiles * row_tiles);
    int64_t dst_offset = 0, src_offset = 0;
    for (int d = inner - 1; d >= 0; --d) {
      if (d == k) continue;
      int64_t i = rest % c.extent[d];
      rest /= c.extent[d];
      dst_offset += i * c.dst[d];
      src_offset += i * c.src[d];
    }
    int64_t r0 = row_tile * kTile, r1 = std::min(rows, r0 + kTile);
    int64_t c0 = col_tile * kTile, c1 = std::min(cols, c0 + kTile);
    // Each output row of the tile is contiguous (dst[inner] == 1, src[k] == 1).
    int64_t src_step = c.src[inner] * int64_t(kBytes);
    for (int64_t i = r0; i < r1; ++i) {
      char* d = dst + (dst_offset + i * c.dst[k] + c0) * int64_t(kBytes);
      const char* p = src + (src_offset + i + c0 * c.src[inner]) * int64_t(kBytes);
      for (int64_t j = c0; j < c1; ++j, d += kBytes, p += src_step) std::memcpy(d, p, kBytes);
    }
  });
}

// Copies by tiles when the output's innermost axis is strided in the input but another axis
// is contiguous there; returns false when the layout is not such a transpose.
inline bool try_copy_tiles(char* dst, const char* src, const CopyLayout& c, size_t bytes) {
  int inner = c.rank - 1;
  if (c.rank < 2 || c.src[inner] == 1 || c.dst[inner] != 1 || c.src[inner] == 0) return false;
  int k = -1;
  for (int d = 0; d < inner; ++d)
    if (c.src[d] == 1) k = d;
  if (k < 0 || c.extent[k] < kTile / 2) return false;
  if (bytes == 1) return copy_tiles<1>(dst, src, c, k), true;
  if (bytes == 2) return copy_tiles<2>(dst, src, c, k), true;
  if (bytes == 4) return copy_tiles<4>(dst, src, c, k), true;
  if (bytes == 8) return copy_tiles<8>(dst, src, c, k), true;
  return false;
}

}  // namespace detail

inline void strided_copy(void* dst, const void* src, const CopyLayout& layout, size_t bytes) {
  for (int d = 0; d < layout.rank; ++d)
    if (layout.extent[d] == 0) return;
  CopyLayout c = detail::simplify(layout);
  auto* out = static_cast<char*>(dst);
  const auto* in = static_cast<const char*>(src);
  if (c.rank == 0) {
    std::memcpy(out, in, bytes);
    return;
  }
  if (detail::try_copy_tiles(out, in, c, bytes)) return;
  int inner = c.rank - 1;
  int64_t run = c.extent[inner];
  int64_t rows = 1;
  for (int d = 0; d < inner; ++d) rows *= c.extent[d];
  parallel_for(rows, std::max<int64_t>(1, kParallelGrain / run), [&](int64_t row) {
    int64_t dst_offset = 0, src_offset = 0, rest = row;
    for (int d = inner - 1; d >= 0; --d) {
      int64_t i = rest % c.extent[d];
      rest /= c.extent[d];
      dst_offset += i * c.dst[d];
      src_offset += i * c.src[d];
    }
    detail::copy_run_bytes(out + dst_offset * int64_t(bytes), c.dst[inner],
                           in + src_offset * int64_t(bytes), c.src[inner], run, bytes);
  });
}

}  // namespace loom::cpu
