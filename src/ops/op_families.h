// One registration function per op family (src/ops/families.def); register_all_ops() calls
// each once.
#pragma once

#include "ir/op_registry.h"

namespace loom::ops {

#define LOOM_OP_FAMILY(name) void register_##name##_ops(ir::OpRegistry& r);
#include "ops/families.def"
#undef LOOM_OP_FAMILY

void register_all_ops(ir::OpRegistry& r);

}  // namespace loom::ops
