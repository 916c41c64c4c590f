// Parameters of matmul as its kernels read them (see norm_params.h).
#pragma once

#include "ir/node.h"

namespace loom::ops {

struct MatmulParams {
  bool transpose_a;
  bool transpose_b;
  static MatmulParams decode(const ir::Node& node) {
    return {node.attrs.get<bool>("transpose_a"), node.attrs.get<bool>("transpose_b")};
  }
};

}  // namespace loom::ops
