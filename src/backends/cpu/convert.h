// The CPU's name for the shared value conversion (src/core/scalar_semantics.h holds the
// rules, for the CUDA kernels too).
#pragma once

#include "core/scalar_semantics.h"

namespace loom::cpu {

using scalar::convert;

}  // namespace loom::cpu
