// Parameters of the reductions as their kernels read them (see norm_params.h).
#pragma once

#include <cstdint>
#include <vector>

#include "ir/node.h"

namespace loom::ops {

// sum, mean, max, min. Read by reference: a run copies nothing.
struct ReduceParams {
  const std::vector<int64_t>& axes;  // empty: every axis
  bool keepdims;
  static ReduceParams decode(const ir::Node& node) {
    return {node.attrs.get<std::vector<int64_t>>("axes"), node.attrs.get<bool>("keepdims")};
  }
};

struct ArgmaxParams {
  int64_t axis;
  bool keepdims;
  static ArgmaxParams decode(const ir::Node& node) {
    return {node.attrs.get<int64_t>("axis"), node.attrs.get<bool>("keepdims")};
  }
};

}  // namespace loom::ops
