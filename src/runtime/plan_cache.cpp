// The plans of an executable, one per binding of the symbols, bounded by count and by the
// bytes of their arenas. Eviction takes the least used plan (ties: the least recently used),
// and halves every use count now and then, so that a workload cycling through more bindings
// than the cache holds keeps its hot bindings (and their CUDA graphs) while cold ones come
// and go, and a binding hot long ago cools down.
#include <algorithm>

#include "loom/error.h"
#include "runtime/executable_impl.h"

namespace loom {

namespace {

// Use counts halve every this many runs of the executable.
constexpr uint64_t kUseHalfLife = 256;

size_t plan_bytes(const runtime::Plan& plan) { return plan.arena ? plan.arena->bytes() : 0; }

}  // namespace

bool Executable::Impl::ready_variables(bool require_all) {
  auto held = variables->lock();
  bool all = true;
  for (const ir::Node* n : variable_nodes) {
    const ir::TensorType& type = n->type();
    if (!variables->has(n->name)) {
      if (!require_all) {
        all = false;
        continue;
      }
      fail(ErrorKind::value, "variable '" + n->name + "' (" + dtype_name(type.dtype) + " " +
                                 to_string(type.shape) +
                                 ") has no value: declare, set or adopt it in the executable's "
                                 "VariableStore before running");
    }
    const TensorData& value = variables->get(n->name);
    if (value.dtype() != type.dtype)
      fail(ErrorKind::dtype, "variable '" + n->name + "' is " + dtype_name(type.dtype) +
                                 " in the graph, " + dtype_name(value.dtype()) + " in the store");
    if (to_shape(value.shape()) != type.shape)
      fail(ErrorKind::shape, "variable '" + n->name + "' has shape " + to_string(type.shape) +
                                 " in the graph, " + to_string(value.shape()) + " in the store");
    if (written_variables.count(n->name)) variables->make_writable(n->name);
  }
  return all;
}

runtime::Plan& Executable::Impl::plan_for(const std::vector<int64_t>& key) {
  ++run_count;
  // Plans read variables at the addresses they had when made (a captured CUDA graph too).
  const uint64_t generation = variables->generation();
  if (generation != store_generation) {
    plans.clear();
    last_plan = nullptr;
  }
  if (run_count % kUseHalfLife == 0)
    for (auto& [k, p] : plans) p->uses /= 2;
  if (run_count % kUseHalfLife == 0)
    for (auto& [k, uses] : evicted_uses) uses /= 2;
  auto it = plans.find(key);
  if (it == plans.end()) {
    ready_variables(true);
    if (variables->generation() != generation) {
      plans.clear();
      last_plan = nullptr;
    }
    store_generation = variables->generation();
    SymbolBinding binding;
    for (size_t i = 0; i < symbols.size(); ++i) binding[symbols[i]] = key[i];
    std::unique_ptr<runtime::Plan> made = make_plan(binding);
    size_t held = plan_bytes(*made);
    for (const auto& [k, p] : plans) held += plan_bytes(*p);
    // Each plan holds an arena (and on CUDA a graph): keep within the budgets, so that, say,
    // prefills of many lengths do not grow memory without bound. The new plan always stays.
    while (!plans.empty() &&
           (plans.size() + 1 > std::max<size_t>(max_cached_plans, 1) || held > plan_cache_bytes)) {
      auto victim = plans.begin();
      for (auto p = plans.begin(); p != plans.end(); ++p)
        if (std::pair(p->second->uses, p->second->last_used) <
            std::pair(victim->second->uses, victim->second->last_used))
          victim = p;
      if (last_plan == victim->second.get()) last_plan = nullptr;
      held -= plan_bytes(*victim->second);
      if (evicted_uses.size() >= 4 * std::max<size_t>(max_cached_plans, 1))
        evicted_uses.erase(evicted_uses.begin());
      evicted_uses[victim->first] = victim->second->uses;
      plans.erase(victim);
      ++plans_generation;  // a caller's captured graph may hold the evicted arena
    }
    // A binding planned again resumes its count, so one that recurs between many cold ones
    // outlives them even when it was evicted once.
    if (auto ghost = evicted_uses.find(key); ghost != evicted_uses.end()) {
      made->uses = ghost->second;
      evicted_uses.erase(ghost);
    }
    it = plans.emplace(key, std::move(made)).first;
    stats.planned = true;
  }
  runtime::Plan& plan = *it->second;
  ++plan.uses;
  plan.last_used = run_count;
  last_plan = &plan;
  return plan;
}

}  // namespace loom
