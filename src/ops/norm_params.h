// Parameters of the normalisation ops as their kernels read them, decoded once from a node
// whose attributes Graph::add_node filled from the schema (defaults: loom::op_defaults).
// Shared by the CPU and CUDA kernels.
#pragma once

#include <cstdint>

#include "ir/node.h"

namespace loom::ops {

// softmax, log_softmax
struct SoftmaxParams {
  int64_t axis;
  static SoftmaxParams decode(const ir::Node& node) { return {node.attrs.get<int64_t>("axis")}; }
};

// layer_norm, rms_norm: over the last axis; weight and bias are named optional inputs.
struct NormParams {
  double eps;
  bool has_weight;
  bool has_bias;
  static NormParams decode(const ir::Node& node) {
    return {node.attrs.get<double>("eps"), node.has_input("weight"), node.has_input("bias")};
  }
};

}  // namespace loom::ops
