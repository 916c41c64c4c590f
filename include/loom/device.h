// Devices and the memory buffers that live on them.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>

namespace loom {

enum class DeviceKind { cpu, cuda };

struct Device {
  DeviceKind kind = DeviceKind::cpu;
  int index = 0;

  static Device cpu() { return {DeviceKind::cpu, 0}; }
  static Device cuda(int index = 0) { return {DeviceKind::cuda, index}; }
  // "cpu", "cuda", "cuda:1"; throws loom::Error(value) otherwise.
  static Device parse(const std::string& text);
  std::string str() const;
  bool operator==(const Device& o) const { return kind == o.kind && index == o.index; }
  bool operator!=(const Device& o) const { return !(*this == o); }
};

// True when Loom was built with CUDA and a GPU is present.
bool cuda_available();

// A block of memory on one device. Made by the device's backend, or wrapped around
// memory someone else owns (a NumPy array, a torch tensor) with a keep-alive handle.
class Buffer {
 public:
  Buffer(Device device, void* data, size_t bytes, std::function<void(void*)> release);
  ~Buffer();
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  Device device() const { return device_; }

  // Allocates `bytes` on `device` through its backend (counted by allocation_count()).
  static std::shared_ptr<Buffer> allocate(Device device, size_t bytes);
  // Wraps foreign memory; `owner` is kept alive as long as the buffer.
  static std::shared_ptr<Buffer> wrap(Device device, void* data, size_t bytes,
                                      std::shared_ptr<void> owner);

 private:
  Device device_;
  void* data_;
  size_t bytes_;
  std::function<void(void*)> release_;
};

// Number of device or host buffers Loom has allocated in this process; tests use it to
// prove that a steady-state run allocates nothing.
size_t allocation_count();

}  // namespace loom
