// Parameters of quantized_qkv_rope as its kernels read them, decoded once from the node.
#pragma once

#include <span>
#include <string>

#include "backends/backend.h"
#include "ir/node.h"
#include "ops/position_params.h"

namespace loom::ops {

struct QkvRopeParams {
  std::string format;
  bool int8_activations;
  double norm_eps;
  int64_t head_dim;
  RopeParams rope;
  const TensorView* norm_weight;  // null when absent

  static QkvRopeParams decode(const ir::Node& node, std::span<const TensorView> in) {
    const int at = node.find_input("norm_weight");
    return {node.attrs.get<std::string>("format"),
            node.attrs.get_or<bool>("int8_activations", true),
            node.attrs.get_or<double>("norm_eps", 0.0),
            node.attrs.get<int64_t>("head_dim"),
            RopeParams::decode(node),
            at >= 0 ? &in[size_t(at)] : nullptr};
  }
};

}  // namespace loom::ops
