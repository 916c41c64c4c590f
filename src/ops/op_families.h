// One registration function per op family; register_all_ops() calls each once.
#pragma once

#include "ir/op_registry.h"

namespace loom::ops {

void register_source_ops(ir::OpRegistry& r);       // placeholder, constant, variable, read, assign
void register_elementwise_ops(ir::OpRegistry& r);  // unary, binary, compare, where, cast
void register_matmul_ops(ir::OpRegistry& r);       // matmul
void register_reduce_ops(ir::OpRegistry& r);       // sum, mean, max, min, argmax
void register_norm_ops(ir::OpRegistry& r);         // softmax, log_softmax, layer_norm, rms_norm
void register_shape_ops(ir::OpRegistry& r);  // reshape, transpose, broadcast_to, concat, split
void register_slice_ops(ir::OpRegistry& r);  // slice, dynamic_slice, slice_update(_inplace), gather
void register_position_ops(ir::OpRegistry& r);  // arange, rope
void register_attention_ops(ir::OpRegistry& r);  // scaled_dot_product_attention

void register_all_ops(ir::OpRegistry& r);

}  // namespace loom::ops
