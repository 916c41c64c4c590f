// Parameters of quantized_matmul as its kernels read them, decoded once from a node whose
// attributes Graph::add_node filled from the schema. Shared by the CPU and CUDA kernels.
#pragma once

#include <span>

#include "backends/backend.h"
#include "ir/node.h"

namespace loom::ops {

struct QuantizedMatmulParams {
  bool int8_activations;
  double norm_eps;
  // The optional inputs the fuse_quantized_matmul_norm_residual pass sets; null when absent.
  const TensorView* norm_weight;
  const TensorView* residual;
  const TensorView* gate_blocks;

  bool has_edges() const { return norm_weight || residual || gate_blocks; }

  static QuantizedMatmulParams decode(const ir::Node& node, std::span<const TensorView> in) {
    auto optional = [&](const char* name) -> const TensorView* {
      const int at = node.find_input(name);
      return at >= 0 ? &in[size_t(at)] : nullptr;
    };
    return {node.attrs.get_or<bool>("int8_activations", true),
            node.attrs.get_or<double>("norm_eps", 0.0), optional("norm_weight"),
            optional("residual"), optional("gate_blocks")};
  }
};

}  // namespace loom::ops
