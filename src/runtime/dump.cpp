// Executable::dump: the graph after the passes, then the plan of the most recent binding
// (made at compile time for static shapes and CompileOptions::plan_for): its arena and the
// kernel and tactic of each step, with the measured time where candidates were timed, e.g.
//   %7 matmul -> cuda.matmul.cublaslt#algo3  0.21 ms  (8 tried)
#include <cstdio>

#include "runtime/executable_impl.h"

namespace loom {

static std::string step_line(const runtime::Step& step) {
  std::string s = "  %" + std::to_string(step.node->id) + " " + step.node->op_name() + " -> " +
                  step.kernel->name;
  if (!step.tactic.name.empty()) s += "#" + step.tactic.name;
  if (step.tried > 0) {
    char ms[32];
    std::snprintf(ms, sizeof ms, "%.3g", step.measured_ms);
    s += std::string("  ") + ms + " ms  (" + std::to_string(step.tried) + " tried)";
  }
  if (step.tactic.workspace_bytes > 0)
    s += "  workspace " + std::to_string(step.tactic.workspace_bytes) + " B";
  // Inputs the kernel reads through a copy the planner made (views it does not read as they
  // are).
  for (const auto& g : step.gathers) s += "  gathers input " + std::to_string(g.input);
  return s + "\n";
}

std::string Executable::dump() const {
  Impl& impl = checked_impl(impl_);
  std::lock_guard<std::mutex> lock(impl.mutex);
  std::string s = impl.program->dump();
  if (const runtime::Plan* plan = impl.last_plan) {
    std::string binding;
    for (const auto& [symbol, size] : plan->binding)
      binding += (binding.empty() ? "" : ", ") + symbol + "=" + std::to_string(size);
    s += "plan" + (binding.empty() ? "" : " for " + binding) + " (" + impl.device.str() +
         "): arena " + std::to_string(plan->arena_bytes) + " B\n";
    for (const auto& step : plan->steps) s += step_line(step);
    for (const auto& step : plan->assign_steps) s += step_line(step);
  }
  return s;
}

}  // namespace loom
