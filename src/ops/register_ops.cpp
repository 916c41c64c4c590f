#include "ops/op_families.h"

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
  register_attention_ops(r);
}

}  // namespace loom::ops
