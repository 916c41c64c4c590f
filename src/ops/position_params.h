// Parameters of arange and rope as their kernels read them (see norm_params.h).
#pragma once

#include <cstdint>

#include "ir/node.h"

namespace loom::ops {

struct ArangeParams {
  double start;
  double stop;
  double step;
  DType dtype;
  static ArangeParams decode(const ir::Node& node) {
    return {node.attrs.get<double>("start"), node.attrs.get<double>("stop"),
            node.attrs.get<double>("step"), node.attrs.get<DType>("dtype")};
  }
};

struct RopeParams {
  double base;
  bool interleaved;
  int64_t dims;  // 0: every feature
  double scale;
  static RopeParams decode(const ir::Node& node) {
    return {node.attrs.get<double>("base"), node.attrs.get<bool>("interleaved"),
            node.attrs.get<int64_t>("dims"), node.attrs.get<double>("scale")};
  }
  // The rotated features of a row of `features`.
  int64_t rotated(int64_t features) const { return dims == 0 ? features : dims; }
};

}  // namespace loom::ops
