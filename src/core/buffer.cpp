#include <atomic>

#include "core/device_memory.h"
#include "loom/device.h"
#include "loom/error.h"

namespace loom {

static std::atomic<size_t> g_allocations{0};

size_t allocation_count() { return g_allocations.load(); }

Buffer::Buffer(Device device, void* data, size_t bytes, std::function<void(void*)> release)
    : device_(device), data_(data), bytes_(bytes), release_(std::move(release)) {}

Buffer::~Buffer() {
  if (release_) release_(data_);
}

std::shared_ptr<Buffer> Buffer::allocate(Device device, size_t bytes) {
  DeviceMemory& memory = device_memory(device);
  void* data = memory.allocate(bytes);
  ++g_allocations;
  return std::make_shared<Buffer>(device, data, bytes, [&memory](void* p) { memory.release(p); });
}

std::shared_ptr<Buffer> Buffer::wrap(Device device, void* data, size_t bytes,
                                     std::shared_ptr<void> owner) {
  return std::make_shared<Buffer>(device, data, bytes, [owner](void*) mutable { owner.reset(); });
}

}  // namespace loom
