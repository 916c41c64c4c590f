// Block conversions between float and f16/bf16. Element-at-a-time conversion dominates
// 16-bit elementwise kernels; converting a run at once lets f16 use the CPU's F16C
// instructions (checked at run time, since the build targets x86-64-v2) and lets the
// compiler vectorise bf16.
#pragma once

#include <cstdint>

#include "backends/cpu/dispatch.h"

namespace loom::cpu {

void convert_to_float(const f16_t* src, float* dst, int64_t n);
void convert_to_float(const bf16_t* src, float* dst, int64_t n);
// Round to nearest even, as float_to_f16 / float_to_bf16 do.
void convert_from_float(const float* src, f16_t* dst, int64_t n);
void convert_from_float(const float* src, bf16_t* dst, int64_t n);

template <class T>
inline constexpr bool is_half_v = std::is_same_v<T, f16_t> || std::is_same_v<T, bf16_t>;

}  // namespace loom::cpu
