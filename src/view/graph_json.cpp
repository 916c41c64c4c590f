#include "view/graph_json.h"

#include "ir/op_registry.h"
#include "loom/version.h"
#include "runtime/executable_impl.h"

namespace loom::view {

using nlohmann::json;

json program_json(const ir::Program& program) {
  json nodes = json::array();
  for (const auto& node : program.nodes()) {
    const ir::Node& n = *node;
    json attrs = json::object();
    for (const auto& [name, value] : n.attrs.items()) attrs[name] = attr_to_string(value);
    json inputs = json::array(), types = json::array();
    for (const auto& in : n.inputs) inputs.push_back({in.node->id, in.output});
    for (const auto& t : n.outputs) types.push_back(t.str());
    nodes.push_back({{"id", n.id},
                     {"op", n.op_name()},
                     {"role", ir::op_role_name(n.op->role)},
                     {"name", n.name},
                     {"attrs", attrs},
                     {"inputs", inputs},
                     {"types", types}});
  }
  json outputs = json::array();
  for (const auto& o : program.outputs()) outputs.push_back({o.node->id, o.output});
  return {{"nodes", nodes}, {"outputs", outputs}};
}

namespace {

json step_json(const runtime::Step& step) {
  json types = json::array();
  for (const auto& v : step.outputs)
    types.push_back(std::string(dtype_name(v.dtype)) + to_string(v.shape));
  return {{"kernel", step.kernel->name},
          {"tactic", step.tactic.name},
          {"ms", step.measured_ms},
          {"tried", step.tried},
          {"workspace", step.tactic.workspace_bytes},
          {"types", types}};
}

}  // namespace

json executable_json(const Executable& exe) {
  Executable::Impl& impl = impl_of(exe);
  std::lock_guard<std::mutex> lock(impl.mutex);
  json stages = json::array();
  for (const auto& d : impl.dumps)
    if (!d.json.empty()) stages.push_back({{"name", d.pass}, {"graph", json::parse(d.json)}});
  json final_graph = program_json(*impl.program);
  if (stages.empty())
    stages.push_back({{"name", impl.package_note.empty() ? "after the passes" : "loaded package"},
                      {"graph", final_graph}});
  stages.push_back({{"name", "lowered"}, {"graph", final_graph}, {"lowered", true}});

  json plan = nullptr;
  if (const runtime::Plan* p = impl.last_plan) {
    json binding = json::object();
    for (const auto& [symbol, size] : p->binding) binding[symbol] = size;
    json steps = json::object();
    for (const auto* list : {&p->steps, &p->assign_steps})
      for (const auto& s : *list) steps[std::to_string(s.node->id)] = step_json(s);
    json buffers = json::array();
    for (const auto& b : p->buffers)
      buffers.push_back({{"node", b.node_id},
                         {"output", b.output},
                         {"offset", b.offset},
                         {"bytes", b.bytes},
                         {"first", b.first},
                         {"last", b.last}});
    plan = {{"binding", binding},
            {"arena_bytes", p->arena_bytes},
            {"steps", steps},
            {"buffers", buffers}};
  }
  json profile = json::array();
  for (const auto& t : impl.last_profile)
    profile.push_back({{"node", t.node}, {"op", t.op}, {"kernel", t.kernel}, {"ms", t.ms}});
  return {{"loom_version", kVersion},
          {"device", impl.device.str()},
          {"note", impl.package_note},
          {"stages", stages},
          {"plan", plan},
          {"profile", profile}};
}

}  // namespace loom::view
