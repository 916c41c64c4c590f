#include <atomic>

#include "backends/backend.h"
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
  Backend& backend = backend_for(device);
  void* data = backend.allocate(bytes);
  ++g_allocations;
  return std::make_shared<Buffer>(device, data, bytes, [&backend](void* p) { backend.release(p); });
}

std::shared_ptr<Buffer> Buffer::wrap(Device device, void* data, size_t bytes,
                                     std::shared_ptr<void> owner) {
  return std::make_shared<Buffer>(device, data, bytes, [owner](void*) mutable { owner.reset(); });
}

std::string Device::str() const {
  if (kind == DeviceKind::cpu) return "cpu";
  return index == 0 ? "cuda" : "cuda:" + std::to_string(index);
}

Device Device::parse(const std::string& text) {
  if (text == "cpu") return cpu();
  if (text == "cuda") return cuda(0);
  if (text.rfind("cuda:", 0) == 0) {
    std::string rest = text.substr(5);
    if (!rest.empty() && rest.size() < 4 &&
        rest.find_first_not_of("0123456789") == std::string::npos)
      return cuda(std::stoi(rest));
  }
  fail(ErrorKind::value,
       "unknown device '" + text + "' (valid names: cpu, cuda, cuda:N with N a GPU index)");
}

}  // namespace loom
