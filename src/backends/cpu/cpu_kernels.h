// CPU kernel families, one per op family (src/ops/families.def); the CPU backend calls each
// registration once.
#pragma once

#include "backends/backend.h"

namespace loom::cpu {

#define LOOM_OP_FAMILY(name) void register_##name##_kernels(Backend& b);
#include "ops/families.def"
#undef LOOM_OP_FAMILY

}  // namespace loom::cpu
