// The compiler's passes. Each runs on the IR in place; the pass manager runs them in
// order and skips those CompileOptions::disabled_passes names.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "ir/node.h"
#include "loom/device.h"

namespace loom::passes {

struct PassContext {
  Device device;
};

using PassFn = std::function<void(ir::Program&, const PassContext&)>;

struct Pass {
  std::string name;
  PassFn run;
};

void verify(ir::Program& program, const PassContext& ctx);
void fold_constants(ir::Program& program, const PassContext& ctx);
void eliminate_common_subexpressions(ir::Program& program, const PassContext& ctx);
void eliminate_dead_code(ir::Program& program, const PassContext& ctx);
void fuse_attention(ir::Program& program, const PassContext& ctx);
void fuse_matmul_bias(ir::Program& program, const PassContext& ctx);
void fuse_quantized_matmul(ir::Program& program, const PassContext& ctx);
void fuse_quantized_matmul_norm_residual(ir::Program& program, const PassContext& ctx);
void fuse_qkv_rope(ir::Program& program, const PassContext& ctx);
void transposes_as_reshapes(ir::Program& program, const PassContext& ctx);
void fuse_elementwise(ir::Program& program, const PassContext& ctx);
void update_state_in_place(ir::Program& program, const PassContext& ctx);
void fuse_qkv_cache_write(ir::Program& program, const PassContext& ctx);

// The passes in the order they run.
const std::vector<Pass>& all_passes();

}  // namespace loom::passes
