#include "core/device_memory.h"

#include <cstring>
#include <vector>

#include "loom/error.h"

namespace loom {

void gather_strided_host(void* dst, const void* src, size_t elem, const Extents& shape,
                         const Strides& strides) {
  size_t rank = shape.size();
  int64_t n = loom::numel(shape);
  std::vector<int64_t> idx(rank, 0);
  const char* base = static_cast<const char*>(src);
  char* out = static_cast<char*>(dst);
  for (int64_t i = 0; i < n; ++i) {
    int64_t off = 0;
    for (size_t d = 0; d < rank; ++d) off += idx[d] * strides[d];
    std::memcpy(out + size_t(i) * elem, base + off * int64_t(elem), elem);
    for (size_t d = rank; d-- > 0;) {
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
  }
}

// The default for devices whose memory the host reads (the CPU).
void DeviceMemory::copy_strided(void* dst, const void* src, size_t element_bytes,
                                const Extents& shape, const Strides& src_strides, void*) {
  if (device().kind != DeviceKind::cpu)
    fail(ErrorKind::unsupported, "no strided copy on " + device().str());
  gather_strided_host(dst, src, element_bytes, shape, src_strides);
}

}  // namespace loom
