#include "loom/tensor_data.h"

#include <cstring>
#include <vector>

#include "core/device_memory.h"
#include "core/element_access.h"
#include "core/scalar_semantics.h"
#include "loom/error.h"

namespace loom {

TensorData::TensorData(std::shared_ptr<Buffer> buffer, DType dtype, Extents shape, Strides strides,
                       int64_t offset)
    : buffer_(std::move(buffer)),
      dtype_(dtype),
      shape_(std::move(shape)),
      strides_(std::move(strides)),
      offset_(offset) {
  if (strides_.size() != shape_.size())
    fail(ErrorKind::shape, "TensorData: " + std::to_string(strides_.size()) +
                               " strides for shape " + to_string(shape_));
  for (auto e : shape_)
    if (e < 0) fail(ErrorKind::shape, "TensorData: negative extent in " + to_string(shape_));
  if (!buffer_) return;
  if (is_packed(dtype_) && (!is_contiguous() || storage_bytes(dtype_, offset_) * 8 !=
                                                    size_t(offset_) * dtype_info(dtype_).bits))
    fail(ErrorKind::unsupported, "TensorData: packed dtypes must be contiguous and byte-aligned");
  // Every addressable element must lie inside the buffer.
  if (numel() > 0) {
    int64_t lo = offset_, hi = offset_;
    bool overflow = false;
    for (size_t d = 0; d < shape_.size(); ++d) {
      int64_t span = 0;
      overflow |= __builtin_mul_overflow(shape_[d] - 1, strides_[d], &span);
      overflow |= __builtin_add_overflow(span < 0 ? lo : hi, span, span < 0 ? &lo : &hi);
    }
    if (overflow || lo < 0 || hi >= (int64_t(1) << 60) ||
        storage_bytes(dtype_, hi + 1) > buffer_->bytes())
      fail(ErrorKind::shape, "TensorData: view " + to_string(shape_) + " with strides " +
                                 to_string(strides_) + " lies outside its buffer of " +
                                 std::to_string(buffer_->bytes()) + " bytes");
  }
}

int64_t TensorData::numel() const { return loom::numel(shape_); }

void* TensorData::data() const {
  if (!buffer_) return nullptr;
  return static_cast<char*>(buffer_->data()) + storage_bytes(dtype_, offset_);
}

bool TensorData::is_contiguous() const {
  int64_t expected = 1;
  for (size_t i = shape_.size(); i-- > 0;) {
    if (shape_[i] != 1 && strides_[i] != expected) return false;
    expected *= shape_[i];
  }
  return true;
}

void TensorData::check_count(size_t count, const Extents& shape) {
  if (int64_t(count) != loom::numel(shape))
    fail(ErrorKind::shape, "TensorData: " + std::to_string(count) + " values for shape " +
                               to_string(shape) + " (" + std::to_string(loom::numel(shape)) +
                               " elements)");
}

void TensorData::check_dtype(DType expected) const {
  if (dtype_ != expected)
    fail(ErrorKind::dtype,
         std::string("TensorData holds ") + dtype_name(dtype_) + ", not " + dtype_name(expected));
}

TensorData TensorData::empty(DType dtype, Extents shape, Device device) {
  for (auto e : shape)
    if (e < 0) fail(ErrorKind::shape, "TensorData: negative extent in " + to_string(shape));
  size_t bytes = storage_bytes(dtype, loom::numel(shape));
  auto buffer = Buffer::allocate(device, bytes == 0 ? 1 : bytes);
  Strides strides = contiguous_strides(shape);
  return TensorData(std::move(buffer), dtype, std::move(shape), std::move(strides));
}

TensorData TensorData::zeros(DType dtype, Extents shape, Device device) {
  TensorData t = empty(dtype, std::move(shape), Device::cpu());
  std::memset(t.data(), 0, t.nbytes());
  return device == Device::cpu() ? t : t.to(device);
}

TensorData TensorData::from_pointer(const void* data, DType dtype, Extents shape) {
  TensorData t = empty(dtype, std::move(shape));
  if (t.nbytes()) {
    if (!data) fail(ErrorKind::value, "TensorData::from_pointer: null data");
    std::memcpy(t.data(), data, t.nbytes());
  }
  return t;
}

// Converts with the rules of the cast op, so out-of-range values and NaN are defined.
template <class V>
static TensorData convert_values(const V* values, size_t count, DType dtype, Extents shape) {
  TensorData t = TensorData::empty(dtype, std::move(shape));
  if (dtype == DType::c64) {
    float* out = static_cast<float*>(t.data());
    for (size_t i = 0; i < count; ++i) out[2 * i] = float(values[i]), out[2 * i + 1] = 0.f;
    return t;
  }
  element::dispatch_all(dtype, [&](auto tag) {
    using T = decltype(tag);
    T* out = static_cast<T*>(t.data());
    for (size_t i = 0; i < count; ++i)
      element::store(out + i, scalar::convert<element::compute_t<T>>(values[i]));
  });
  return t;
}

TensorData TensorData::from_floats(const std::vector<float>& values, DType dtype, Extents shape) {
  check_count(values.size(), shape);
  return convert_values(values.data(), values.size(), dtype, std::move(shape));
}

TensorData TensorData::scalar(double value, DType dtype) {
  return convert_values(&value, 1, dtype, {});
}

TensorData TensorData::wrap(void* data, DType dtype, Extents shape, Strides strides, Device device,
                            std::shared_ptr<void> owner) {
  // Span of the view, so the buffer's size covers exactly what the view reaches.
  int64_t lo = 0, hi = 0;
  bool empty = false, overflow = false;
  for (size_t d = 0; d < shape.size() && d < strides.size(); ++d) {
    if (shape[d] == 0) empty = true;
    int64_t span = 0;
    overflow |= __builtin_mul_overflow(shape[d] - 1, strides[d], &span);
    overflow |= __builtin_add_overflow(span < 0 ? lo : hi, span, span < 0 ? &lo : &hi);
  }
  if (overflow || hi - lo >= (int64_t(1) << 60))
    fail(ErrorKind::shape, "TensorData::wrap: shape " + to_string(shape) + " with strides " +
                               to_string(strides) + " spans more memory than exists");
  if (empty) lo = hi = 0;
  char* base = static_cast<char*>(data) - storage_bytes(dtype, -lo);
  size_t bytes = storage_bytes(dtype, hi - lo + 1);
  auto buffer = Buffer::wrap(device, base, bytes, std::move(owner));
  return TensorData(std::move(buffer), dtype, std::move(shape), std::move(strides), -lo);
}

TensorData TensorData::view(Extents shape, Strides strides, int64_t offset) const {
  if (!buffer_) fail(ErrorKind::value, "TensorData::view of an empty TensorData");
  return TensorData(buffer_, dtype_, std::move(shape), std::move(strides), offset);
}

TensorData TensorData::contiguous() const {
  if (!buffer_ || is_contiguous()) return *this;
  // Gathered where the data lives: a device view never takes a trip through the host (which
  // would need to() and so contiguous() again).
  TensorData out = empty(dtype_, shape_, device());
  if (device() == Device::cpu()) {
    gather_strided_host(out.data(), data(), storage_bytes(dtype_, 1), shape_, strides_);
    return out;
  }
  DeviceMemory& b = device_memory(device());
  b.copy_strided(out.data(), data(), storage_bytes(dtype_, 1), shape_, strides_, nullptr);
  b.synchronize(nullptr);
  return out;
}

TensorData TensorData::to(Device target) const {
  if (!buffer_) fail(ErrorKind::value, "TensorData::to on an empty TensorData");
  TensorData src = contiguous();
  if (target == device()) return src;
  TensorData out = empty(dtype_, shape_, target);
  DeviceMemory& b = device_memory(target == Device::cpu() ? src.device() : target);
  b.copy(out.data(), target, src.data(), src.device(), src.nbytes(), nullptr);
  b.synchronize(nullptr);
  return out;
}

TensorData TensorData::clone() const {
  TensorData src = contiguous();
  if (src.buffer() != buffer_) return src;
  TensorData out = empty(dtype_, shape_, device());
  DeviceMemory& b = device_memory(device());
  b.copy(out.data(), device(), src.data(), device(), src.nbytes(), nullptr);
  b.synchronize(nullptr);
  return out;
}

std::vector<float> TensorData::to_floats() const {
  TensorData host = to_host().contiguous();
  if (dtype_ == DType::c64) {
    const float* p = static_cast<const float*>(host.data());
    return std::vector<float>(p, p + 2 * host.numel());
  }
  std::vector<float> out(size_t(host.numel()));
  element::dispatch_all(dtype_, [&](auto tag) {
    using T = decltype(tag);
    const T* p = static_cast<const T*>(host.data());
    for (size_t i = 0; i < out.size(); ++i) out[i] = float(element::load(p + i));
  });
  return out;
}

}  // namespace loom
