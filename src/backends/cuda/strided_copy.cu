// The strided copy kernel and the host code that simplifies and widens a copy.
#include <algorithm>

#include "backends/cuda/cuda_error.h"
#include "backends/cuda/device/launch.cuh"
#include "backends/cuda/device/pdl.cuh"
#include "backends/cuda/device/types.cuh"
#include "backends/cuda/strided_copy.h"

namespace loom::cuda {

void DeviceStarts::add(int start_index, int64_t limit_value, int64_t stride_value) {
  if (count >= kMaxDims)
    fail(ErrorKind::unsupported,
         "CUDA kernels take run-time starts for at most " + std::to_string(kMaxDims) + " axes");
  index[count] = start_index;
  limit[count] = limit_value;
  stride[count] = stride_value;
  ++count;
}

namespace {

__device__ __forceinline__ int64_t device_offset(const DeviceStarts& s) {
  int64_t offset = 0;
  for (int k = 0; k < s.count; ++k) {
    int64_t v = s.starts_i64 ? static_cast<const int64_t*>(s.starts)[s.index[k]]
                             : int64_t(static_cast<const int32_t*>(s.starts)[s.index[k]]);
    v = v < 0 ? 0 : (v > s.limit[k] ? s.limit[k] : v);
    offset += v * s.stride[k];
  }
  return offset;
}

template <class T>
__global__ void strided_copy_kernel(T* __restrict__ dst, const T* __restrict__ src, int64_t n,
                                    StridedIndexer<2> ix, DeviceStarts starts, bool starts_on_dst) {
  pdl_wait();  // src and the starts come from earlier kernels
  pdl_release();
  int64_t base = starts.count ? device_offset(starts) : 0;
  if (starts_on_dst) {
    dst += base;
  } else {
    src += base;
  }
  int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    int64_t off[2];
    ix.offsets(i, off);
    dst[off[0]] = src[off[1]];
  }
}

bool aligned_to(const void* p, size_t bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

}  // namespace

void strided_copy(void* dst, const void* src, size_t element_bytes, const Extents& extents,
                  const Strides& dst_strides, const Strides& src_strides,
                  const DeviceStarts& starts, bool starts_on_dst, cudaStream_t stream,
                  const char* what) {
  int64_t n = numel(extents);
  if (n == 0) return;
  auto ix = make_indexer<2>(extents, {dst_strides, src_strides});
  DeviceStarts s = starts;
  size_t unit = element_bytes;
  int last = ix.rank - 1;
  // Widen the moved unit when the innermost run is contiguous on both sides and every
  // other offset stays a multiple of the wider unit.
  if (last >= 0 && ix.stride[0][last] == 1 && ix.stride[1][last] == 1) {
    for (size_t w = 16; w > element_bytes; w /= 2) {
      bool ok = (size_t(ix.extent[last]) * element_bytes) % w == 0 && aligned_to(dst, w) &&
                aligned_to(src, w);
      for (int d = 0; d < last && ok; ++d)
        ok = (size_t(ix.stride[0][d]) * element_bytes) % w == 0 &&
             (size_t(ix.stride[1][d]) * element_bytes) % w == 0;
      for (int k = 0; k < s.count && ok; ++k) ok = (size_t(s.stride[k]) * element_bytes) % w == 0;
      if (!ok) continue;
      int64_t ratio = int64_t(w / element_bytes);
      ix.extent[last] /= ratio;
      for (int d = 0; d < last; ++d) {
        ix.stride[0][d] /= ratio;
        ix.stride[1][d] /= ratio;
      }
      for (int k = 0; k < s.count; ++k) s.stride[k] /= ratio;
      n /= ratio;
      unit = w;
      break;
    }
  }
  dispatch_bytes(unit, [&](auto tag) {
    using T = decltype(tag);
    check_cuda(launch_pdl(strided_copy_kernel<T>, dim3(std::min(blocks_for(n, kThreads), 65536u)),
                          dim3(kThreads), 0, stream, static_cast<T*>(dst),
                          static_cast<const T*>(src), n, ix, s, starts_on_dst),
               what);
  });
  check_launch(what);
}

}  // namespace loom::cuda
