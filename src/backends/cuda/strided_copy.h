// One strided copy kernel for every data-movement op (transpose, broadcast_to, concat,
// split, slice, dynamic_slice, slice_update, assign): it moves elements by size, merges
// dims that are contiguous on both sides, and moves up to 16 bytes per thread when rows and
// pointers allow. Run-time window starts are read on the device, so a captured CUDA graph
// stays valid when they change.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "backends/cuda/device/indexing.cuh"
#include "loom/dtype.h"
#include "loom/shape.h"

namespace loom::cuda {

// Starts read from an i32/i64 device tensor, each clamped to [0, limit] and multiplied by a
// stride (in elements) of the tensor it offsets.
struct DeviceStarts {
  int count = 0;
  const void* starts = nullptr;
  bool starts_i64 = false;
  int index[kMaxDims] = {};  // element of `starts` read for axis k
  int64_t limit[kMaxDims] = {};
  int64_t stride[kMaxDims] = {};

  // Adds one axis; throws when more than kMaxDims are needed.
  void add(int start_index, int64_t limit_value, int64_t stride_value);
};

// Element i of `extents` moves from src + Σ i_d·src_strides[d] to dst + Σ i_d·dst_strides[d];
// `starts` offsets dst (starts_on_dst) or src.
void strided_copy(void* dst, const void* src, size_t element_bytes, const Extents& extents,
                  const Strides& dst_strides, const Strides& src_strides,
                  const DeviceStarts& starts, bool starts_on_dst, cudaStream_t stream,
                  const char* what);

inline void strided_copy(void* dst, const void* src, size_t element_bytes, const Extents& extents,
                         const Strides& dst_strides, const Strides& src_strides,
                         cudaStream_t stream, const char* what) {
  strided_copy(dst, src, element_bytes, extents, dst_strides, src_strides, DeviceStarts{}, false,
               stream, what);
}

}  // namespace loom::cuda
