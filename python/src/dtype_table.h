// One row per Loom dtype: how NumPy, DLPack (torch) and the buffer protocol spell it.
// Conversions look rows up here instead of switching on dtypes.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "loom/dtype.h"

namespace loom::python {

struct DTypeInterop {
  DType dtype;
  const char* numpy_name;  // numpy.dtype(name); "bfloat16" comes from ml_dtypes
  uint8_t dlpack_code;     // DLPack DLDataTypeCode
  uint8_t dlpack_bits;
  const char* buffer_format;  // struct-module format NumPy exports; null when it has none
};

// The row of a dtype; null for dtypes without an array form (packed int4/uint4).
const DTypeInterop* interop_of(DType dtype);
std::optional<DType> dtype_of_dlpack(uint8_t code, uint8_t bits, uint16_t lanes);
// `format` without its byte-order prefix; 'l' and 'q' are told apart by their size.
std::optional<DType> dtype_of_buffer_format(std::string_view format, int64_t itemsize);

}  // namespace loom::python
