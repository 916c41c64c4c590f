// DType and the one table that describes every dtype.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace loom {

enum class DType : uint8_t { f32, f16, bf16, i8, u8, i32, i64, boolean, c64, i4, u4 };

inline constexpr int kDTypeCount = 11;

struct DTypeInfo {
  DType dtype;
  const char* name;
  int bits;         // storage bits per element (4 for packed i4/u4)
  bool is_float;    // f32, f16, bf16
  bool is_integer;  // i8..i64, u8, i4, u4
  bool is_signed;
  bool is_complex;
};

const DTypeInfo& dtype_info(DType dtype);
const char* dtype_name(DType dtype);
// Throws loom::Error for an unknown name.
DType dtype_from_name(std::string_view name);
// Bytes needed for `count` elements (packed types round up to whole bytes).
size_t storage_bytes(DType dtype, int64_t count);
inline bool is_float(DType d) { return dtype_info(d).is_float; }
inline bool is_integer(DType d) { return dtype_info(d).is_integer; }
inline bool is_packed(DType d) { return dtype_info(d).bits < 8; }

inline constexpr DType float32 = DType::f32;
inline constexpr DType float16 = DType::f16;
inline constexpr DType bfloat16 = DType::bf16;
inline constexpr DType int8 = DType::i8;
inline constexpr DType uint8 = DType::u8;
inline constexpr DType int32 = DType::i32;
inline constexpr DType int64 = DType::i64;
inline constexpr DType boolean = DType::boolean;

}  // namespace loom
