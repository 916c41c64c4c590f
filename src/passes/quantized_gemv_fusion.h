// What the passes that fold work into the quantized GEMV (fuse_quantized_matmul_norm_residual,
// fuse_qkv_rope) both ask of a node.
#pragma once

#include <cstdint>

#include "ir/node.h"
#include "passes/pass.h"

namespace loom::passes {

// The GEMV's row groups (src/backends/cuda/quantized_matmul.cu): a fused edge runs only there.
inline constexpr int64_t kGemvMaxRows = 8;

inline bool is_program_output(const ir::Program& program, const ir::Node* node) {
  for (const auto& out : program.outputs())
    if (out.node == node) return true;
  return false;
}

// Rows of x (the product of all but its last dim) are known and few enough for the GEMV,
// or the device (the CPU) runs every row count through the same kernel.
inline bool gemv_rows_fit(const ir::Node& qmm, const PassContext& ctx) {
  if (ctx.device.kind == DeviceKind::cpu) return true;
  const ir::TensorType& x = qmm.inputs[0].node->type(qmm.inputs[0].output);
  int64_t rows = 1;
  for (size_t d = 0; d + 1 < x.shape.size(); ++d) {
    if (!x.shape[d].is_static()) return false;
    rows *= x.shape[d].value();
  }
  return rows <= kGemvMaxRows;
}

}  // namespace loom::passes
