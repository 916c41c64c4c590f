// The variable store: named values on one device, owned or shared (see executable.h).
#include <utility>

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

const VariableStore::Entry& VariableStore::entry(const std::string& name) const {
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

VariableStore::Entry& VariableStore::entry(const std::string& name) {
  return const_cast<Entry&>(std::as_const(*this).entry(name));
}

const TensorData& VariableStore::get(const std::string& name) const { return entry(name).value; }

bool VariableStore::is_shared(const std::string& name) const { return entry(name).shared; }

static void check_same_type(const std::string& name, const TensorData& current,
                            const TensorData& value, const char* what) {
  if (!value.defined()) fail(ErrorKind::value, "variable '" + name + "': empty value");
  if (value.dtype() != current.dtype())
    fail(ErrorKind::dtype, "variable '" + name + "' is " + dtype_name(current.dtype()) + ", " +
                               what + " is " + dtype_name(value.dtype()));
  if (value.shape() != current.shape())
    fail(ErrorKind::shape, "variable '" + name + "' has shape " + to_string(current.shape()) +
                               ", " + what + " " + to_string(value.shape()));
}

void VariableStore::set(const std::string& name, const TensorData& value) {
  auto held = lock();
  Entry& e = entry(name);
  check_same_type(name, e.value, value, "the new value");
  if (e.shared) {
    // Copy-on-write: the shared bytes are never written (they may be read-only memory).
    TensorData copy = value.to(device_);
    if (copy.buffer() == value.buffer()) copy = value.clone();
    e = {std::move(copy), false};
    ++generation_;
    return;
  }
  TensorData src = value.contiguous();
  Backend& b = backend_for(device_ == Device::cpu() ? src.device() : device_);
  b.copy(e.value.data(), device_, src.data(), src.device(), src.nbytes(), nullptr);
  b.synchronize(nullptr);
}

void VariableStore::declare(const std::string& name, const TensorData& initial) {
  auto held = lock();
  auto it = values_.find(name);
  if (it != values_.end()) {
    const TensorData& existing = it->second.value;
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
  if (!initial.defined()) fail(ErrorKind::value, "variable '" + name + "': empty initial value");
  // Shared where it already lies in the right form; copied otherwise (another device, or a
  // strided view whose contiguous() is a copy anyway).
  TensorData value = initial.to(device_);
  bool shared = value.buffer() == initial.buffer();
  values_.emplace(name, Entry{std::move(value), shared});
}

void VariableStore::adopt(const std::string& name, const TensorData& value) {
  auto held = lock();
  if (!value.defined()) fail(ErrorKind::value, "adopt: variable '" + name + "': empty value");
  if (value.device() != device_)
    fail(ErrorKind::device, "adopt: variable '" + name + "' lies on " + value.device().str() +
                                ", the store on " + device_.str() + " (adopt takes no copy)");
  if (!value.is_contiguous())
    fail(ErrorKind::value, "adopt: variable '" + name + "' is a strided view " +
                               to_string(value.shape()) + " with strides " +
                               to_string(value.strides()) + "; adopt takes contiguous data");
  auto it = values_.find(name);
  if (it != values_.end()) {
    check_same_type(name, it->second.value, value, "the adopted value");
    it->second = {value, true};
  } else {
    values_.emplace(name, Entry{value, true});
  }
  ++generation_;
}

void VariableStore::make_writable(const std::string& name) {
  auto held = lock();
  Entry& e = entry(name);
  if (!e.shared) return;
  TensorData copy = TensorData::empty(e.value.dtype(), e.value.shape(), device_);
  Backend& b = backend_for(device_);
  b.copy(copy.data(), device_, e.value.data(), device_, e.value.nbytes(), nullptr);
  b.synchronize(nullptr);
  e = {std::move(copy), false};
  ++generation_;
}

std::vector<std::string> VariableStore::names() const {
  auto held = lock();
  std::vector<std::string> out;
  for (const auto& [k, v] : values_) out.push_back(k);
  return out;
}

}  // namespace loom
