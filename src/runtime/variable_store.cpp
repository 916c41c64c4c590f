#include "backends/backend.h"
#include "loom/error.h"
#include "loom/executable.h"

namespace loom {

// The device is checked here, not at the first variable, so that a store on a GPU that is
// not there (or a CUDA device in a build without CUDA) fails where it is made.
VariableStore::VariableStore(Device device) : device_(device) {
  try {
    backend_for(device);
  } catch (const Error& e) {
    fail(e.kind(), "variable store on " + device.str() + ": " + e.what());
  }
}

const TensorData& VariableStore::get(const std::string& name) const {
  auto held = lock();
  auto it = values_.find(name);
  if (it == values_.end()) {
    std::string known;
    for (const auto& [k, v] : values_) known += (known.empty() ? "" : ", ") + k;
    fail(ErrorKind::value,
         "unknown variable '" + name + "' (variables: " + (known.empty() ? "none" : known) + ")");
  }
  return it->second;
}

void VariableStore::set(const std::string& name, const TensorData& value) {
  auto held = lock();
  const TensorData& current = get(name);
  if (!value.defined()) fail(ErrorKind::value, "variable '" + name + "': empty value");
  if (value.dtype() != current.dtype())
    fail(ErrorKind::dtype, "variable '" + name + "' is " + dtype_name(current.dtype()) +
                               ", the new value is " + dtype_name(value.dtype()));
  if (value.shape() != current.shape())
    fail(ErrorKind::shape, "variable '" + name + "' has shape " + to_string(current.shape()) +
                               ", the new value " + to_string(value.shape()));
  TensorData src = value.contiguous();
  Backend& b = backend_for(device_ == Device::cpu() ? src.device() : device_);
  b.copy(current.data(), device_, src.data(), src.device(), src.nbytes(), nullptr);
  b.synchronize(nullptr);
}

void VariableStore::declare(const std::string& name, const TensorData& initial) {
  auto held = lock();
  auto it = values_.find(name);
  if (it != values_.end()) {
    const TensorData& existing = it->second;
    if (existing.dtype() != initial.dtype())
      fail(ErrorKind::dtype, "variable '" + name + "' already exists in the store as " +
                                 dtype_name(existing.dtype()) + ", not " +
                                 dtype_name(initial.dtype()));
    if (existing.shape() != initial.shape())
      fail(ErrorKind::shape, "variable '" + name + "' already exists in the store with shape " +
                                 to_string(existing.shape()) + ", not " +
                                 to_string(initial.shape()));
    return;
  }
  TensorData copy = initial.to(device_);
  if (copy.buffer() == initial.buffer()) copy = initial.clone();
  values_.emplace(name, std::move(copy));
}

std::vector<std::string> VariableStore::names() const {
  auto held = lock();
  std::vector<std::string> out;
  for (const auto& [k, v] : values_) out.push_back(k);
  return out;
}

}  // namespace loom
