#include "compiler/pass_manager.h"

#include "loom/error.h"
#include "passes/pass.h"
#include "view/graph_json.h"

namespace loom::passes {

const std::vector<Pass>& all_passes() {
  static const std::vector<Pass> passes = {
      {"verify", verify},
      {"constant_folding", fold_constants},
      {"common_subexpressions", eliminate_common_subexpressions},
      // Before anything that rewrites transposes, softmax or matmuls.
      {"fuse_attention", fuse_attention},
      {"fuse_quantized_matmul", fuse_quantized_matmul},
      {"transposes_as_reshapes", transposes_as_reshapes},
      {"dead_code", eliminate_dead_code},
      {"fuse_matmul_bias", fuse_matmul_bias},
      {"fuse_quantized_matmul_norm_residual", fuse_quantized_matmul_norm_residual},
      {"fuse_qkv_rope", fuse_qkv_rope},
      {"fuse_elementwise", fuse_elementwise},
      {"inplace_state", update_state_in_place},
      {"fuse_qkv_cache_write", fuse_qkv_cache_write},
  };
  return passes;
}

}  // namespace loom::passes

namespace loom::compiler {

void check_pass_names(const CompileOptions& options) {
  for (const auto& name : options.disabled_passes) {
    bool known = false;
    for (const auto& p : passes::all_passes()) known |= p.name == name;
    if (!known) {
      std::string all;
      for (const auto& p : passes::all_passes()) all += (all.empty() ? "" : ", ") + p.name;
      fail(ErrorKind::value, "compile: unknown pass '" + name + "' (passes: " + all + ")");
    }
  }
}

void run_passes(ir::Program& program, const CompileOptions& options, std::vector<PassDump>& dumps) {
  passes::PassContext ctx{options.device};
  // The text for dumps, the JSON for the viewer (nodes a pass added, removed or changed are
  // found by id between consecutive snapshots).
  auto snapshot = [&](const std::string& name) {
    dumps.push_back({name, program.dump(), view::program_json(program).dump()});
  };
  if (options.keep_pass_dumps) snapshot("input");
  for (const auto& pass : passes::all_passes()) {
    if (options.disabled_passes.count(pass.name)) continue;
    pass.run(program, ctx);
    if (options.keep_pass_dumps) snapshot(pass.name);
  }
}

}  // namespace loom::compiler

namespace loom {

std::vector<std::string> pass_names() {
  std::vector<std::string> names;
  for (const auto& p : passes::all_passes()) names.push_back(p.name);
  return names;
}

}  // namespace loom
