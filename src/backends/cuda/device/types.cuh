// Storage types of each dtype on the device, conversion to the type arithmetic is done in
// (f16 and bf16 compute in f32), and host-side dispatch from a DType to its storage type.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <string>
#include <type_traits>

#include "loom/dtype.h"
#include "loom/error.h"

namespace loom::cuda {

using half = __half;
using bf16 = __nv_bfloat16;

template <class T>
struct compute_type {
  using type = T;
};
template <>
struct compute_type<half> {
  using type = float;
};
template <>
struct compute_type<bf16> {
  using type = float;
};
template <class T>
using compute_t = typename compute_type<T>::type;

template <class T>
inline constexpr bool is_float_v =
    std::is_same_v<T, float> || std::is_same_v<T, half> || std::is_same_v<T, bf16>;

template <class T>
__device__ __forceinline__ compute_t<T> load(T v) {
  if constexpr (std::is_same_v<T, half>) {
    return __half2float(v);
  } else if constexpr (std::is_same_v<T, bf16>) {
    return __bfloat162float(v);
  } else {
    return v;
  }
}

// Converts a computed value to storage type T (round to nearest even for f16/bf16).
template <class T, class V>
__device__ __forceinline__ T store_as(V v) {
  if constexpr (std::is_same_v<T, half>) {
    return __float2half_rn(float(v));
  } else if constexpr (std::is_same_v<T, bf16>) {
    return __float2bfloat16_rn(float(v));
  } else if constexpr (std::is_same_v<T, bool>) {
    return v != V(0);
  } else if constexpr (std::is_same_v<V, half> || std::is_same_v<V, bf16>) {
    return T(load(v));
  } else {
    return T(v);
  }
}

// Calls fn(T{}) with T the device storage type of a float dtype.
template <class Fn>
decltype(auto) dispatch_float(DType dtype, Fn&& fn) {
  switch (dtype) {
    case DType::f32:
      return fn(float{});
    case DType::f16:
      return fn(half{});
    case DType::bf16:
      return fn(bf16{});
    default:
      break;
  }
  fail(ErrorKind::dtype,
       std::string("CUDA kernel expected a float dtype, got ") + dtype_name(dtype));
}

// Float dtypes and the integer dtypes arithmetic is defined on (not bool).
template <class Fn>
decltype(auto) dispatch_numeric(DType dtype, Fn&& fn) {
  switch (dtype) {
    case DType::f32:
      return fn(float{});
    case DType::f16:
      return fn(half{});
    case DType::bf16:
      return fn(bf16{});
    case DType::i8:
      return fn(int8_t{});
    case DType::u8:
      return fn(uint8_t{});
    case DType::i32:
      return fn(int32_t{});
    case DType::i64:
      return fn(int64_t{});
    default:
      break;
  }
  fail(ErrorKind::unsupported,
       std::string("CUDA kernels do not support dtype ") + dtype_name(dtype) + " here");
}

template <class Fn>
decltype(auto) dispatch_all(DType dtype, Fn&& fn) {
  if (dtype == DType::boolean) return fn(bool{});
  return dispatch_numeric(dtype, std::forward<Fn>(fn));
}

// Data movement only looks at the element size: one unsigned type per byte width.
template <class Fn>
decltype(auto) dispatch_bytes(size_t bytes, Fn&& fn) {
  switch (bytes) {
    case 1:
      return fn(uint8_t{});
    case 2:
      return fn(uint16_t{});
    case 4:
      return fn(uint32_t{});
    case 8:
      return fn(uint64_t{});
    case 16:
      return fn(uint4{});
    default:
      break;
  }
  fail(ErrorKind::unsupported, "CUDA copy of " + std::to_string(bytes) + "-byte elements");
}

inline size_t element_bytes(DType dtype) {
  if (is_packed(dtype))
    fail(ErrorKind::unsupported,
         std::string("CUDA data movement of packed dtype ") + dtype_name(dtype));
  return storage_bytes(dtype, 1);
}

}  // namespace loom::cuda
