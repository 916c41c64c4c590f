// Lowering for one binding of the symbols: concrete types, a kernel and tactic per node,
// the memory plan (values and step workspaces in one arena), and precomputed views.
#include <algorithm>
#include <map>
#include <set>
#include <utility>
#include <vector>

#include "backends/strided_views.h"
#include "ir/op_registry.h"
#include "loom/error.h"
#include "runtime/executable_impl.h"
#include "runtime/kernel_selection.h"
#include "runtime/memory_plan.h"
#include "runtime/tactic_cache.h"
#include "runtime/views.h"

namespace loom {

using runtime::Plan;
using runtime::Step;

namespace {

TensorView view_of(void* data, const ir::TensorType& type, Strides strides) {
  return {data, type.dtype, static_extents(type.shape), std::move(strides)};
}

// Where a node's kernel choice stands before the arena exists.
struct Pending {
  std::vector<runtime::Candidate> candidates;
  size_t chosen = 0;
  bool to_time = false;  // several candidates, none cached: timed once the arena exists
  double ms = -1;
  int tried = 0;
  std::string key;  // tactic cache key, when there are several candidates
  size_t workspace_bytes() const {
    if (!to_time) return candidates[chosen].tactic.workspace_bytes;
    size_t most = 0;
    for (const auto& c : candidates) most = std::max(most, c.tactic.workspace_bytes);
    return most;
  }
};

}  // namespace

std::unique_ptr<Plan> Executable::Impl::make_plan(const SymbolBinding& binding) {
  auto plan = std::make_unique<Plan>();
  plan->binding = binding;
  const auto& nodes = program->nodes();
  std::map<const ir::Node*, int> position;
  std::map<const ir::Node*, std::vector<ir::TensorType>> types;

  // 1. Concrete types: inference again, now with every dim known.
  for (size_t i = 0; i < nodes.size(); ++i) {
    const ir::Node* n = nodes[i].get();
    position[n] = int(i);
    std::vector<ir::TensorType> in;
    for (const auto& v : n->inputs) in.push_back(types.at(v.node).at(size_t(v.output)));
    ir::InferContext ctx{n->op_name(), in, n->attrs, &binding};
    auto out = n->op->infer(ctx);
    for (const auto& t : out)
      for (const auto& d : t.shape)
        if (!d.is_static())
          fail(ErrorKind::shape, n->op_name() + " (%" + std::to_string(n->id) + ") has shape " +
                                     to_string(t.shape) + ": symbolic dim '" + d.symbol() +
                                     "' is bound by no placeholder");
    types[n] = std::move(out);
  }

  // Alias ops whose output is a view of their input (runtime/views.h).
  const runtime::ViewPlan view_plan = runtime::plan_views(nodes, types);
  auto layout_of = [&](ir::Value v) {
    return view_plan.layout(v, static_extents(types.at(v.node).at(size_t(v.output)).shape));
  };

  // 2. Storage: arena values get lifetimes; aliases and views share their root's storage,
  // which they keep alive.
  std::map<ir::Value, ir::Value> root_of;
  std::map<ir::Value, int> arena_index;
  std::vector<runtime::Lifetime> lifetimes;
  auto root = [&](ir::Value v) {
    auto it = root_of.find(v);
    return it == root_of.end() ? v : it->second;
  };
  for (const auto& node : nodes) {
    ir::Node* n = node.get();
    bool in_arena = n->is(ir::OpRole::placeholder) || !n->op->is_source;
    // Feeds are copied in before any step runs, so a placeholder lives from the start.
    int first = n->is(ir::OpRole::placeholder) ? 0 : position[n];
    for (size_t o = 0; o < n->outputs.size(); ++o) {
      if (int source = view_plan.alias_source(*n, int(o)); source >= 0) {
        root_of[{n, int(o)}] = root(n->inputs.at(size_t(source)));
        continue;
      }
      if (!in_arena) continue;
      const auto& t = types[n][o];
      arena_index[{n, int(o)}] = int(lifetimes.size());
      lifetimes.push_back(
          {storage_bytes(t.dtype, numel(static_extents(t.shape))), first, position[n]});
    }
  }
  // Assigns run after every other step, so what they store lives to the end.
  int end = int(nodes.size());
  for (const auto& node : nodes)
    for (const auto& in : node->inputs) {
      auto it = arena_index.find(root(in));
      int use = node->is(ir::OpRole::assign) ? end : position[node.get()];
      if (it != arena_index.end())
        lifetimes[size_t(it->second)].last = std::max(lifetimes[size_t(it->second)].last, use);
    }
  for (const auto& out : program->outputs()) {
    auto it = arena_index.find(root(out));
    if (it != arena_index.end()) lifetimes[size_t(it->second)].last = end;
  }
  // An assign whose value is the buffer of another assigned variable reads a snapshot taken
  // before any assign runs, so that assign(a, read(b)); assign(b, read(a)) swaps them; so
  // does one whose value is a rearranging view of its own variable (assign(v, transpose(v))),
  // which the assign would overwrite while reading it.
  std::set<const ir::Node*> assigned;
  for (const auto& node : nodes)
    if (node->is(ir::OpRole::assign)) assigned.insert(node->inputs[0].node);
  std::map<const ir::Node*, int> snapshot_index;
  for (const auto& node : nodes) {
    if (!node->is(ir::OpRole::assign)) continue;
    ir::Value value = root(node->inputs[1]);
    const runtime::ValueLayout value_layout = layout_of(node->inputs[1]);
    const auto& value_type = types.at(node->inputs[1].node).at(size_t(node->inputs[1].output));
    bool moves_elements =
        value_layout.offset != 0 ||
        value_layout.strides != contiguous_strides(static_extents(value_type.shape));
    if (!assigned.count(value.node) || (value.node == node->inputs[0].node && !moves_elements))
      continue;
    const auto& t = types.at(node->inputs[1].node).at(size_t(node->inputs[1].output));
    snapshot_index[node.get()] = int(lifetimes.size());
    lifetimes.push_back({storage_bytes(t.dtype, numel(static_extents(t.shape))), end, end});
  }

  // 3. Views of every value at `base` (arena offsets from `offsets`, or all at `base` while
  // the layout is not known yet: every arena offset is 256-byte aligned, so a provisional
  // base of that alignment shows kernels the alignment they will get).
  std::map<ir::Value, TensorView> views;
  auto make_views = [&](char* base, const std::vector<size_t>* offsets) {
    views.clear();
    for (const auto& node : nodes) {
      const ir::Node* n = node.get();
      ir::Node* mut = node.get();
      for (size_t o = 0; o < n->outputs.size(); ++o) {
        ir::Value v{mut, int(o)};
        void* data = nullptr;
        if (int source = view_plan.alias_source(*n, int(o)); source >= 0) {
          // The root's first byte, then this view's offset into it.
          ir::Value r = root(v);
          data = static_cast<char*>(views.at(r).data) +
                 storage_bytes(types[n][o].dtype, layout_of(v).offset);
        } else if (n->is(ir::OpRole::constant)) {
          data = constants.at(n).data();
        } else if (n->is(ir::OpRole::variable)) {
          data = variables->get(n->name).data();
        } else {
          data = base + (offsets ? (*offsets)[size_t(arena_index.at(v))] : 0);
        }
        views[v] = view_of(data, types[n][o], layout_of(v).strides);
      }
    }
  };
  auto step_views = [&](const ir::Node* n, std::vector<TensorView>& in,
                        std::vector<TensorView>& out) {
    in.clear();
    out.clear();
    for (const auto& v : n->inputs) in.push_back(views.at(v));
    for (size_t o = 0; o < n->outputs.size(); ++o)
      out.push_back(views.at({const_cast<ir::Node*>(n), int(o)}));
  };

  // 4. Kernel and tactic candidates per node, before any memory is allocated: a node no
  // kernel supports fails here, before a run writes anything.
  alignas(runtime::kArenaAlignment) static char provisional_base[runtime::kArenaAlignment];
  make_views(provisional_base, nullptr);
  const std::string identity = device_identity(device);
  std::map<const ir::Node*, Pending> pending;
  std::map<const ir::Node*, int> workspace_index;
  // Contiguous copies of views that a node's kernel does not read as they are, one per value:
  // made by the first step that needs it, read by later ones, alive from the first to the
  // last (a value never changes during the steps: the one in-place update of a variable comes
  // before every read of its new value). An assign, which runs after every step, has its own.
  std::map<std::pair<const ir::Node*, size_t>, int> gather_index;
  std::map<ir::Value, int> shared_gather;
  bool timing = false;
  std::vector<TensorView> in, out;
  const std::map<int, runtime::TacticChoice>* preset = nullptr;
  if (!preset_tactics.empty()) {
    std::vector<int64_t> key;
    for (const auto& s : symbols) key.push_back(binding.at(s));
    if (auto it = preset_tactics.find(key); it != preset_tactics.end()) preset = &it->second;
  }
  for (const auto& node : nodes) {
    const ir::Node* n = node.get();
    if (view_plan.views.count(n)) continue;
    step_views(n, in, out);
    Pending p;
    if (view_plan.copies.count(n)) {
      p.candidates.push_back(
          {runtime::copy_kernel(device), Tactic{}, std::vector<bool>(in.size(), false)});
      pending.emplace(n, std::move(p));
      continue;
    }
    if (!runtime::needs_kernel(*n)) continue;
    p.candidates = runtime::candidates_for(*backend, *n, in, out, provisional_base);
    if (p.candidates.empty()) runtime::fail_no_kernel(device, *n, in);
    bool found = false;
    if (preset) {
      // A loaded package's choice; a kernel or tactic this build lacks is chosen again below.
      auto it = preset->find(n->id);
      for (size_t i = 0; it != preset->end() && !found && i < p.candidates.size(); ++i)
        if (p.candidates[i].kernel->name == it->second.kernel &&
            p.candidates[i].tactic.name == it->second.tactic) {
          p.chosen = i;
          p.ms = it->second.ms;
          p.tried = it->second.tried;
          found = true;
        }
      if (!found && p.candidates.size() > 1)
        package_note += std::string(package_note.empty() ? "" : "; ") + "%" +
                        std::to_string(n->id) + " " + n->op_name() +
                        ": the package's kernel is not available here, chosen again";
    }
    if (p.candidates.size() > 1 && !found) {
      p.key = runtime::tactic_key(identity, *n, in, out);
      if (auto cached = runtime::find_tactic(p.key))
        for (size_t i = 0; !found && i < p.candidates.size(); ++i)
          if (p.candidates[i].kernel->name == cached->kernel &&
              p.candidates[i].tactic.name == cached->tactic) {
            p.chosen = i;
            p.ms = cached->ms;
            p.tried = cached->tried;
            found = true;
          }
      // Timing runs the kernel, so never for one that writes a variable.
      p.to_time = !found && time_tactics && !n->op->writes_state();
      timing |= p.to_time;
    }
    // Copies for the chosen candidate's gathers; while timing, for any candidate's.
    for (size_t i = 0; i < in.size(); ++i)
      if (std::any_of(p.candidates.begin(), p.candidates.end(), [&](const auto& c) {
            return c.gathered[i] && (p.to_time || &c == &p.candidates[p.chosen]);
          })) {
        const bool shareable = !n->is(ir::OpRole::assign);
        auto shared = shareable ? shared_gather.find(n->inputs[i]) : shared_gather.end();
        if (shared != shared_gather.end()) {
          gather_index[{n, i}] = shared->second;
          lifetimes[size_t(shared->second)].last = position[n];
          continue;
        }
        gather_index[{n, i}] = int(lifetimes.size());
        if (shareable) shared_gather[n->inputs[i]] = int(lifetimes.size());
        lifetimes.push_back({storage_bytes(in[i].dtype, in[i].numel()), position[n], position[n]});
      }
    if (size_t ws = p.workspace_bytes(); ws > 0) {
      // A workspace lives for its step only, so steps share the same bytes.
      workspace_index[n] = int(lifetimes.size());
      lifetimes.push_back({ws, position[n], position[n]});
      plan->workspace_bytes = std::max(plan->workspace_bytes, ws);
    }
    pending.emplace(n, std::move(p));
  }

  // 5. The arena, 256-byte aligned whatever the allocator gives.
  runtime::ArenaLayout layout = runtime::plan_arena(lifetimes);
  plan->arena_bytes = layout.total_bytes;
  plan->unshared_bytes = layout.unshared_bytes;
  plan->arena =
      Buffer::allocate(device, std::max<size_t>(layout.total_bytes, 1) + runtime::kArenaAlignment);
  auto raw = reinterpret_cast<uintptr_t>(plan->arena->data());
  char* base = reinterpret_cast<char*>((raw + runtime::kArenaAlignment - 1) /
                                       runtime::kArenaAlignment * runtime::kArenaAlignment);
  make_views(base, &layout.offsets);
  for (const auto& [value, index] : arena_index) {
    const auto& life = lifetimes[size_t(index)];
    plan->buffers.push_back({value.node->id, value.output, layout.offsets[size_t(index)],
                             life.bytes, life.first, life.last});
  }
  std::set<int> listed;  // a shared gather copy once, under one of its readers
  for (const auto& [input, index] : gather_index) {
    if (!listed.insert(index).second) continue;
    const auto& life = lifetimes[size_t(index)];
    plan->buffers.push_back(
        {input.first->id, -3, layout.offsets[size_t(index)], life.bytes, life.first, life.last});
  }
  for (auto* special : {&workspace_index, &snapshot_index})
    for (const auto& [node, index] : *special) {
      const auto& life = lifetimes[size_t(index)];
      plan->buffers.push_back({node->id, special == &workspace_index ? -1 : -2,
                               layout.offsets[size_t(index)], life.bytes, life.first, life.last});
    }

  // The contiguous copy of each input a node's kernel gathers (else the input itself).
  auto gathered_views = [&](const ir::Node* n, const std::vector<TensorView>& inputs) {
    std::vector<TensorView> g = inputs;
    for (size_t i = 0; i < g.size(); ++i)
      if (auto it = gather_index.find({n, i}); it != gather_index.end()) {
        g[i].data = base + layout.offsets[size_t(it->second)];
        g[i].strides = contiguous_strides(g[i].shape);
      }
    return g;
  };

  // 6. Time the nodes that have several candidates and no cached choice, on zeroed arena
  // inputs (uninitialised floats could be NaNs or denormals, which some kernels take slowly).
  if (timing) {
    std::vector<char> zeros;
    bool saved_any = false;
    for (const auto& node : nodes) {
      auto it = pending.find(node.get());
      if (it == pending.end() || !it->second.to_time) continue;
      Pending& p = it->second;
      step_views(node.get(), in, out);
      const std::vector<TensorView> gathered = gathered_views(node.get(), in);
      for (const std::vector<TensorView>* list : {&std::as_const(in), &gathered})
        for (const auto& v : *list) {
          auto at = reinterpret_cast<uintptr_t>(v.data), start = reinterpret_cast<uintptr_t>(base);
          if (at < start || at >= start + layout.total_bytes) continue;  // a constant, a variable
          size_t bytes = runtime::span_bytes(v);  // a view's elements lie within its root
          if (zeros.size() < bytes) zeros.resize(bytes);
          backend->copy(v.data, device, zeros.data(), Device::cpu(), bytes, stream);
        }
      backend->synchronize(stream);
      auto ws = workspace_index.find(node.get());
      void* workspace =
          ws == workspace_index.end() ? nullptr : base + layout.offsets[size_t(ws->second)];
      runtime::Timed t = runtime::time_candidates(*backend, stream, *node, p.candidates, in,
                                                  gathered, out, workspace);
      p.chosen = t.index;
      p.ms = t.ms;
      p.tried = t.tried;
      runtime::remember_tactic(p.key, {p.candidates[t.index].kernel->name,
                                       p.candidates[t.index].tactic.name, t.ms, t.tried});
      saved_any = true;
    }
    if (saved_any && !tactic_cache_path.empty()) runtime::save_tactic_cache(tactic_cache_path);
  }

  // 7. Steps, feeds and outputs. An input is invariant when its storage is a constant or a
  // variable that no step of the run writes, and the kernel reads it there (not from a gather
  // copy or snapshot, which a step of the run writes).
  std::set<const ir::Node*> written;
  for (const auto& node : nodes)
    for (int i = 0; i < node->op->written_inputs(); ++i)
      written.insert(root(node->inputs.at(size_t(i))).node);
  auto invariant = [&](ir::Value v) {
    const ir::Node* r = root(v).node;
    return r->is(ir::OpRole::constant) || (r->is(ir::OpRole::variable) && !written.count(r));
  };
  // Gather copies an earlier step makes, and the inputs that read a gather copy.
  std::set<int> gathers_made;
  std::set<std::pair<const ir::Node*, size_t>> reads_copy;
  for (const auto& node : nodes) {
    const ir::Node* n = node.get();
    if (n->is(ir::OpRole::placeholder)) {
      plan->feeds.push_back({n->name, views.at({node.get(), 0}), {}, {}});
      continue;
    }
    auto pend = pending.find(n);
    if (pend == pending.end()) continue;
    Step step;
    step.node = n;
    step_views(n, step.inputs, step.outputs);
    const runtime::Candidate& chosen = pend->second.candidates[pend->second.chosen];
    step.kernel = chosen.kernel;
    step.tactic = chosen.tactic;
    step.measured_ms = pend->second.ms;
    step.tried = pend->second.tried;
    if (auto ws = workspace_index.find(n); ws != workspace_index.end())
      step.workspace = base + layout.offsets[size_t(ws->second)];
    // Ops that write one variable (assign, slice_update_inplace) move only their input 1: the
    // value or the update window; others count their outputs that are not a variable's buffer
    // (the windows that an in-place update of several variables writes are not counted).
    if (n->op->written_inputs() == 1) {
      step.bytes_written = step.inputs.at(1).nbytes();
    } else {
      for (size_t o = 0; o < step.outputs.size(); ++o)
        if (view_plan.alias_source(*n, int(o)) < 0) step.bytes_written += step.outputs[o].nbytes();
    }
    auto snap = snapshot_index.find(n);
    if (snap != snapshot_index.end()) {
      TensorView copy = step.inputs[1];
      copy.data = base + layout.offsets[size_t(snap->second)];
      copy.strides = contiguous_strides(copy.shape);
      plan->snapshots.push_back({step.inputs[1], copy});
      step.inputs[1] = copy;
    }
    const std::vector<TensorView> gathered = gathered_views(n, step.inputs);
    for (size_t i = 0; i < step.inputs.size(); ++i) {
      // A snapshot already made the assign's value contiguous.
      if (!chosen.gathered[i] || (i == 1 && snap != snapshot_index.end())) continue;
      // The first step that reads the copy makes it (a step timed earlier may have reserved
      // it, then chosen a kernel that reads the view).
      if (gathers_made.insert(gather_index.at({n, i})).second) {
        step.gathers.push_back({i, step.inputs[i], gathered[i]});
        step.bytes_written += gathered[i].nbytes();
      }
      step.inputs[i] = gathered[i];
      reads_copy.insert({n, i});
    }
    for (size_t i = 0; i < n->inputs.size() && i < 64; ++i)
      if (invariant(n->inputs[i]) && !reads_copy.count({n, i}) &&
          !(i == 1 && snap != snapshot_index.end()))
        step.invariant_inputs |= uint64_t(1) << i;
    plan->gathers += step.gathers.size();
    plan->bytes_written += step.bytes_written;
    (n->is(ir::OpRole::assign) ? plan->assign_steps : plan->steps).push_back(std::move(step));
  }
  for (const auto& o : program->outputs()) plan->outputs.push_back(views.at(o));

  // 8. Where each feed's bytes are read (its placeholder's view and every alias of it), so a
  // run can point them at the caller's data instead of copying it into the arena. Found by
  // value, not by address: another value may reuse the placeholder's arena bytes later.
  std::map<const ir::Node*, size_t> feed_of;
  for (size_t f = 0; f < plan->feeds.size(); ++f)
    for (const auto& node : nodes)
      if (node->is(ir::OpRole::placeholder) && node->name == plan->feeds[f].name)
        feed_of[node.get()] = f;
  auto note = [&](ir::Value v, TensorView* view) {
    auto it = feed_of.find(root(v).node);
    if (it == feed_of.end()) return;
    plan->feeds[it->second].uses.push_back(view);
    plan->feeds[it->second].use_offsets.push_back(storage_bytes(view->dtype, layout_of(v).offset));
  };
  for (auto* list : {&plan->steps, &plan->assign_steps})
    for (auto& step : *list) {
      for (size_t i = 0; i < step.inputs.size(); ++i) {
        // An input read from a gather copy reads the feed only through the gather that makes
        // the copy (in this step or an earlier one).
        auto g = std::find_if(step.gathers.begin(), step.gathers.end(),
                              [&](const auto& x) { return x.input == i; });
        if (g != step.gathers.end())
          note(step.node->inputs[i], &g->view);
        else if (!reads_copy.count({step.node, i}))
          note(step.node->inputs[i], &step.inputs[i]);
      }
    }
  for (size_t i = 0; i < plan->outputs.size(); ++i) note(program->outputs()[i], &plan->outputs[i]);

  // 9. Outputs their step can write in the caller's buffer (CPU; run.cpp bind_outputs): a
  // step's own contiguous arena value, not a view, feed, constant or variable, that no assign
  // snapshots and no step updates in place; each value once. Its views are found by value,
  // as the feeds' are.
  plan->output_slots.resize(plan->outputs.size());
  if (device.kind == DeviceKind::cpu) {
    std::set<ir::Value> snapshotted, claimed;
    for (const auto& [assign, index] : snapshot_index) snapshotted.insert(root(assign->inputs[1]));
    for (size_t i = 0; i < plan->outputs.size(); ++i) {
      const ir::Value v = program->outputs()[i];
      const ir::Node* n = v.node;
      if (!(root(v) == v) || !arena_index.count(v) || n->is(ir::OpRole::placeholder) ||
          !pending.count(n) || n->op->writes_state() || written.count(n) || snapshotted.count(v) ||
          !is_contiguous(plan->outputs[i]) || !claimed.insert(v).second)
        continue;
      runtime::OutputSlot& slot = plan->output_slots[i];
      auto use = [&](ir::Value u, TensorView* view) {
        if (!(root(u) == v)) return;
        slot.uses.push_back(view);
        slot.use_offsets.push_back(storage_bytes(view->dtype, layout_of(u).offset));
      };
      for (auto* list : {&plan->steps, &plan->assign_steps})
        for (auto& step : *list) {
          for (size_t o = 0; o < step.outputs.size(); ++o)
            use({const_cast<ir::Node*>(step.node), int(o)}, &step.outputs[o]);
          for (size_t k = 0; k < step.inputs.size(); ++k) {
            auto g = std::find_if(step.gathers.begin(), step.gathers.end(),
                                  [&](const auto& x) { return x.input == k; });
            if (g != step.gathers.end())
              use(step.node->inputs[k], &g->view);
            else if (!reads_copy.count({step.node, k}))
              use(step.node->inputs[k], &step.inputs[k]);
          }
        }
      for (size_t j = 0; j < plan->outputs.size(); ++j)
        use(program->outputs()[j], &plan->outputs[j]);
      slot.arena_data = static_cast<char*>(views.at(v).data);
      slot.direct = true;
    }
  }
  return plan;
}

}  // namespace loom
