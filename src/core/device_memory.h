// What the value types below the runtime (Buffer, TensorData) need of a device: memory and
// copies. Each backend implements it (backends/backend.h derives Backend from it) and the
// runtime's registry finds the one for a device (device_memory(), defined in
// runtime/backend_registry.cpp), so TensorData and Buffer include no backend or kernel header.
#pragma once

#include <cstddef>

#include "loom/device.h"
#include "loom/shape.h"

namespace loom {

class DeviceMemory {
 public:
  virtual ~DeviceMemory() = default;
  virtual Device device() const = 0;
  virtual void* allocate(size_t bytes) = 0;
  virtual void release(void* data) = 0;
  // Copies between this device and the host or within this device, ordered on `stream`.
  virtual void copy(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes,
                    void* stream) = 0;
  virtual void synchronize(void* stream) = 0;
  // Gathers a strided view on this device into contiguous memory on this device: element i
  // (row-major over `shape`) comes from src + sum(i_d * src_strides[d]) elements (strides may
  // be zero or negative). Ordered on `stream` (null: the calling thread's own stream). The
  // default reads host memory, which is right for the CPU.
  virtual void copy_strided(void* dst, const void* src, size_t element_bytes, const Extents& shape,
                            const Strides& src_strides, void* stream);
};

// The memory of `device`'s backend; a loom::Error when that backend is not built or the
// device does not exist.
DeviceMemory& device_memory(Device device);

// copy_strided's host form: element by element, row-major over `shape`.
void gather_strided_host(void* dst, const void* src, size_t element_bytes, const Extents& shape,
                         const Strides& src_strides);

}  // namespace loom
