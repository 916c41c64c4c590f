#include "dtype_table.h"

#include <nanobind/ndarray.h>

namespace loom::python {
namespace {

using Code = nanobind::dlpack::dtype_code;

constexpr DTypeInterop kRows[] = {
    {DType::f32, "float32", uint8_t(Code::Float), 32, "f"},
    {DType::f16, "float16", uint8_t(Code::Float), 16, "e"},
    {DType::bf16, "bfloat16", uint8_t(Code::Bfloat), 16, nullptr},
    {DType::i8, "int8", uint8_t(Code::Int), 8, "b"},
    {DType::u8, "uint8", uint8_t(Code::UInt), 8, "B"},
    {DType::i32, "int32", uint8_t(Code::Int), 32, "i"},
    {DType::i64, "int64", uint8_t(Code::Int), 64, "q"},
    {DType::boolean, "bool", uint8_t(Code::Bool), 8, "?"},
    {DType::c64, "complex64", uint8_t(Code::Complex), 64, "Zf"},
};

}  // namespace

const DTypeInterop* interop_of(DType dtype) {
  for (const DTypeInterop& row : kRows) {
    if (row.dtype == dtype) return &row;
  }
  return nullptr;
}

std::optional<DType> dtype_of_dlpack(uint8_t code, uint8_t bits, uint16_t lanes) {
  if (lanes != 1) return std::nullopt;
  for (const DTypeInterop& row : kRows) {
    if (row.dlpack_code == code && row.dlpack_bits == bits) return row.dtype;
  }
  return std::nullopt;
}

std::optional<DType> dtype_of_buffer_format(std::string_view format, int64_t itemsize) {
  // C integer formats name a C type, not a width: i, l and q are 4 or 8 bytes by platform.
  if (format == "i" || format == "l" || format == "q") {
    if (itemsize == 4) return DType::i32;
    if (itemsize == 8) return DType::i64;
    return std::nullopt;
  }
  for (const DTypeInterop& row : kRows) {
    if (row.buffer_format && format == row.buffer_format && itemsize * 8 == row.dlpack_bits) {
      return row.dtype;
    }
  }
  return std::nullopt;
}

}  // namespace loom::python
