// Expands GGUF tensor data of any type Loom reads (F32, F16, BF16 and the block formats
// Q4_0 ... IQ4_NL) into floats. The model loader uses it where a weight is kept dense; the
// quantized kernels read the blocks themselves.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "io/ggml_types.h"

namespace loom::io {

// Writes `count` floats decoded from `bytes` (whole blocks of `type`). Throws loom::Error(io)
// when `count` is not a whole number of blocks or `bytes` holds fewer than they need.
void dequantize_ggml(GgmlType type, std::span<const std::byte> bytes, int64_t count, float* out);

}  // namespace loom::io
