#include <mutex>

#include "ops/op_families.h"

namespace loom::ir {

// Defined with the ops rather than in src/ir: the IR knows no op family, and the registry is
// filled with every family on first use (static registrars would be dropped from a static
// library when nothing references them).
OpRegistry& OpRegistry::instance() {
  static OpRegistry registry;
  static std::once_flag once;
  std::call_once(once, [] { ops::register_all_ops(registry); });
  return registry;
}

}  // namespace loom::ir

namespace loom::ops {

void register_all_ops(ir::OpRegistry& r) {
#define LOOM_OP_FAMILY(name) register_##name##_ops(r);
#include "ops/families.def"
#undef LOOM_OP_FAMILY
}

}  // namespace loom::ops
