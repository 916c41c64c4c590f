// Element access for every storage dtype, shared by host code below the runtime (TensorData's
// conversions) and the CPU kernels: the storage types of f16 and bf16 (arithmetic on them is
// done in f32), load/store through them, and dispatch from a dtype to its storage type.
#pragma once

#include <cstdint>
#include <string>
#include <type_traits>

#include "loom/dtype.h"
#include "loom/error.h"
#include "loom/half.h"

namespace loom::element {

struct f16_t {
  uint16_t bits;
};
struct bf16_t {
  uint16_t bits;
};

// The type arithmetic is done in for a storage type.
template <class T>
struct compute_type {
  using type = T;
};
template <>
struct compute_type<f16_t> {
  using type = float;
};
template <>
struct compute_type<bf16_t> {
  using type = float;
};
template <>
struct compute_type<bool> {
  using type = bool;
};
template <class T>
using compute_t = typename compute_type<T>::type;

template <class T>
inline compute_t<T> load(const T* p) {
  if constexpr (std::is_same_v<T, f16_t>) {
    return f16_to_float(p->bits);
  } else if constexpr (std::is_same_v<T, bf16_t>) {
    return bf16_to_float(p->bits);
  } else {
    return *p;
  }
}

template <class T, class V>
inline void store(T* p, V v) {
  if constexpr (std::is_same_v<T, f16_t>) {
    p->bits = float_to_f16(float(v));
  } else if constexpr (std::is_same_v<T, bf16_t>) {
    p->bits = float_to_bf16(float(v));
  } else {
    *p = T(v);
  }
}

// Calls fn(T{}) with T the storage type of `dtype` (bool is stored as one byte).
template <class Fn>
decltype(auto) dispatch_all(DType dtype, Fn&& fn) {
  switch (dtype) {
    case DType::f32:
      return fn(float{});
    case DType::f16:
      return fn(f16_t{});
    case DType::bf16:
      return fn(bf16_t{});
    case DType::i8:
      return fn(int8_t{});
    case DType::u8:
      return fn(uint8_t{});
    case DType::i32:
      return fn(int32_t{});
    case DType::i64:
      return fn(int64_t{});
    case DType::boolean:
      return fn(bool{});
    default:
      break;
  }
  fail(ErrorKind::unsupported,
       std::string("CPU kernels do not support dtype ") + dtype_name(dtype));
}

template <class Fn>
decltype(auto) dispatch_float(DType dtype, Fn&& fn) {
  switch (dtype) {
    case DType::f32:
      return fn(float{});
    case DType::f16:
      return fn(f16_t{});
    case DType::bf16:
      return fn(bf16_t{});
    default:
      break;
  }
  fail(ErrorKind::dtype, std::string("expected a float dtype, got ") + dtype_name(dtype));
}

}  // namespace loom::element
