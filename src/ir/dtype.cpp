#include "loom/dtype.h"

#include <string>

#include "loom/error.h"

namespace loom {

namespace {
// One row per dtype, in enum order.
constexpr DTypeInfo kDTypes[kDTypeCount] = {
    {DType::f32, "f32", 32, true, false, true, false},
    {DType::f16, "f16", 16, true, false, true, false},
    {DType::bf16, "bf16", 16, true, false, true, false},
    {DType::i8, "i8", 8, false, true, true, false},
    {DType::u8, "u8", 8, false, true, false, false},
    {DType::i32, "i32", 32, false, true, true, false},
    {DType::i64, "i64", 64, false, true, true, false},
    {DType::boolean, "bool", 8, false, false, false, false},
    {DType::c64, "c64", 64, false, false, true, true},
    {DType::i4, "i4", 4, false, true, true, false},
    {DType::u4, "u4", 4, false, true, false, false},
};
}  // namespace

const DTypeInfo& dtype_info(DType dtype) {
  int i = int(dtype);
  if (i < 0 || i >= kDTypeCount) fail(ErrorKind::dtype, "invalid dtype value " + std::to_string(i));
  return kDTypes[i];
}

const char* dtype_name(DType dtype) { return dtype_info(dtype).name; }

DType dtype_from_name(std::string_view name) {
  for (const auto& info : kDTypes)
    if (name == info.name) return info.dtype;
  if (name == "float32") return DType::f32;
  if (name == "float16") return DType::f16;
  if (name == "bfloat16") return DType::bf16;
  if (name == "int32") return DType::i32;
  if (name == "int64") return DType::i64;
  fail(ErrorKind::dtype, "unknown dtype '" + std::string(name) + "'");
}

size_t storage_bytes(DType dtype, int64_t count) {
  int bits = dtype_info(dtype).bits;
  return size_t((count * bits + 7) / 8);
}

}  // namespace loom
