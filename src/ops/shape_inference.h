// Helpers shared by the ops' shape inference.
#pragma once

#include "ir/op_registry.h"

namespace loom::ops {

// Numpy broadcasting of two shapes; symbols match only the same symbol or 1.
Shape broadcast_shapes(const ir::InferContext& ctx, const Shape& a, const Shape& b);
// Product of dims, or nullopt-like -1 when any dim is symbolic.
int64_t static_numel(const Shape& shape);
// Normalises and checks a list of axes (unique, in range); empty means all axes.
std::vector<int> normalize_axes(const ir::InferContext& ctx, const std::vector<int64_t>& axes,
                                int rank, bool empty_means_all);

}  // namespace loom::ops
