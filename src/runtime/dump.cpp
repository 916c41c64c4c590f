// Executable::dump: the graph after the passes and the kernel chosen for each step.
#include "runtime/executable_impl.h"

namespace loom {

std::string Executable::dump() const {
  const Impl& impl = checked_impl(impl_);
  std::string s = impl.program->dump();
  if (impl.last_plan) {
    s += "kernels (" + impl.device.str() + "):\n";
    for (const auto& step : impl.last_plan->steps)
      s += "  %" + std::to_string(step.node->id) + " " + step.node->op_name() + " -> " +
           step.kernel->name + "\n";
  }
  return s;
}

}  // namespace loom
