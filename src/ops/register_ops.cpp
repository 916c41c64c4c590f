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
  register_source_ops(r);
  register_elementwise_ops(r);
  register_matmul_ops(r);
  register_reduce_ops(r);
  register_norm_ops(r);
  register_shape_ops(r);
  register_slice_ops(r);
  register_position_ops(r);
}

}  // namespace loom::ops
