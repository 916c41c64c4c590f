// TensorData: concrete data on a device (dtype, shape, strides, shared buffer).
#pragma once

#include <cstdint>
#include <memory>
#include <type_traits>
#include <vector>

#include "loom/device.h"
#include "loom/dtype.h"
#include "loom/shape.h"

namespace loom {

template <class T>
constexpr DType dtype_of();
template <>
constexpr DType dtype_of<float>() {
  return DType::f32;
}
template <>
constexpr DType dtype_of<int8_t>() {
  return DType::i8;
}
template <>
constexpr DType dtype_of<uint8_t>() {
  return DType::u8;
}
template <>
constexpr DType dtype_of<int32_t>() {
  return DType::i32;
}
template <>
constexpr DType dtype_of<int64_t>() {
  return DType::i64;
}
template <>
constexpr DType dtype_of<bool>() {
  return DType::boolean;
}

class TensorData {
 public:
  TensorData() = default;
  TensorData(std::shared_ptr<Buffer> buffer, DType dtype, Extents shape, Strides strides,
             int64_t offset = 0);

  // Uninitialised contiguous data.
  static TensorData empty(DType dtype, Extents shape, Device device = Device::cpu());
  static TensorData zeros(DType dtype, Extents shape, Device device = Device::cpu());
  // Copies `numel(shape)` elements of `dtype` from host memory.
  static TensorData from_pointer(const void* data, DType dtype, Extents shape);
  template <class T>
  static TensorData from_vector(const std::vector<T>& values, Extents shape) {
    check_count(values.size(), shape);
    if constexpr (std::is_same_v<T, bool>) {
      std::vector<uint8_t> bytes(values.begin(), values.end());
      return from_pointer(bytes.data(), DType::boolean, std::move(shape));
    } else {
      return from_pointer(values.data(), dtype_of<T>(), std::move(shape));
    }
  }
  // Converts floats to any float or integer dtype (f16 and bf16 round to nearest even).
  static TensorData from_floats(const std::vector<float>& values, DType dtype, Extents shape);
  static TensorData scalar(double value, DType dtype = DType::f32);
  // Zero-copy view of memory owned elsewhere; `owner` stays alive with the data.
  static TensorData wrap(void* data, DType dtype, Extents shape, Strides strides, Device device,
                         std::shared_ptr<void> owner);

  bool defined() const { return buffer_ != nullptr; }
  DType dtype() const { return dtype_; }
  const Extents& shape() const { return shape_; }
  const Strides& strides() const { return strides_; }
  int rank() const { return int(shape_.size()); }
  int64_t numel() const;
  size_t nbytes() const { return storage_bytes(dtype_, numel()); }
  Device device() const { return buffer_ ? buffer_->device() : Device::cpu(); }
  int64_t offset() const { return offset_; }
  const std::shared_ptr<Buffer>& buffer() const { return buffer_; }
  void* data() const;
  bool is_contiguous() const;

  // A view with other extents and strides over the same buffer (bounds are checked).
  TensorData view(Extents shape, Strides strides, int64_t offset) const;
  // Contiguous copy on the same device (returns *this when already contiguous).
  TensorData contiguous() const;
  TensorData to(Device device) const;
  TensorData to_host() const { return to(Device::cpu()); }
  TensorData clone() const;

  template <class T>
  std::vector<T> to_vector() const {
    TensorData host = to_host().contiguous();
    check_dtype(dtype_of<T>());
    const T* p = static_cast<const T*>(host.data());
    return std::vector<T>(p, p + host.numel());
  }
  // Any float or integer dtype, converted to float.
  std::vector<float> to_floats() const;

 private:
  static void check_count(size_t count, const Extents& shape);
  void check_dtype(DType expected) const;

  std::shared_ptr<Buffer> buffer_;
  DType dtype_ = DType::f32;
  Extents shape_;
  Strides strides_;
  int64_t offset_ = 0;  // in elements
};

template <>
inline std::vector<bool> TensorData::to_vector<bool>() const {
  TensorData host = to_host().contiguous();
  check_dtype(DType::boolean);
  const uint8_t* p = static_cast<const uint8_t*>(host.data());
  return std::vector<bool>(p, p + host.numel());
}

}  // namespace loom
