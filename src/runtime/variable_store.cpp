#include "backends/backend.h"
#include "loom/error.h"
#include "loom/executable.h"

namespace loom {

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
    if (it->second.dtype() != initial.dtype() || it->second.shape() != initial.shape())
      fail(ErrorKind::shape, "variable '" + name + "' already exists in the store as " +
                                 dtype_name(it->second.dtype()) + to_string(it->second.shape()) +
                                 ", not " + dtype_name(initial.dtype()) +
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
