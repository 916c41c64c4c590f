#include "loom/executable.h"
#include "passes/pass.h"

namespace loom::passes {

const std::vector<Pass>& all_passes() {
  static const std::vector<Pass> passes = {
      {"verify", verify},
      {"constant_folding", fold_constants},
      {"cse", eliminate_common_subexpressions},
      {"fuse_quantized_matmul", fuse_quantized_matmul},
      {"dce", eliminate_dead_code},
      {"fuse_matmul_bias", fuse_matmul_bias},
      {"inplace_state", update_state_in_place},
  };
  return passes;
}

}  // namespace loom::passes

namespace loom {

std::vector<std::string> pass_names() {
  std::vector<std::string> names;
  for (const auto& p : passes::all_passes()) names.push_back(p.name);
  return names;
}

}  // namespace loom
