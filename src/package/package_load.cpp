// loom::load: decodes a package, rebuilds its program node by node with the same checks
// Graph::add_node makes (op known, same schema version, inputs present and of allowed dtypes,
// attributes valid, inference agreeing with the saved types), and makes each saved plan with
// the saved kernel and tactic per node, so that neither the passes nor tactic timing run.
#include "package/package_load.h"

#include <algorithm>
#include <set>

#include "compiler/compile.h"
#include "io/mapped_file.h"
#include "ir/op_registry.h"
#include "loom/error.h"
#include "loom/package.h"
#include "loom/version.h"
#include "package/package_files.h"
#include "package/package_format.h"
#include "runtime/executable_impl.h"

namespace loom {

namespace {

// The declared input each present input is: the saved slots, or positional ones.
std::vector<int> input_slots(const ir::OpDef& def, const package::PackedNode& p) {
  const int declared = int(def.inputs.size());
  const bool variadic_last = declared > 0 && def.inputs.back().variadic;
  std::vector<int> slots;
  for (size_t i = 0; i < p.inputs.size(); ++i) {
    int slot = p.input_slots.empty() ? (variadic_last ? std::min(int(i), declared - 1) : int(i))
                                     : p.input_slots[i];
    if (slot < 0 || slot >= declared)
      fail(ErrorKind::value, "input " + std::to_string(i) + " is declared input " +
                                 std::to_string(slot) + " of " + std::to_string(declared));
    if (!slots.empty() &&
        (slot < slots.back() || (slot == slots.back() && !def.inputs[size_t(slot)].variadic)))
      fail(ErrorKind::value, "input slots out of order");
    slots.push_back(slot);
  }
  for (int k = 0; k < declared; ++k)
    if (!def.inputs[size_t(k)].optional && std::find(slots.begin(), slots.end(), k) == slots.end())
      fail(ErrorKind::value, "input '" + def.inputs[size_t(k)].name + "' is missing");
  return slots;
}

std::unique_ptr<ir::Node> rebuild_node(const package::PackedNode& p,
                                       const std::vector<ir::Node*>& built,
                                       std::set<std::string>& names) {
  const ir::OpDef* def = ir::OpRegistry::instance().find(p.op);
  if (!def) fail(ErrorKind::value, "unknown op (made by another Loom?)");
  if (uint32_t(def->version) != p.op_version)
    fail(ErrorKind::value, "op version " + std::to_string(p.op_version) + " in the package, " +
                               std::to_string(def->version) + " in this Loom");
  auto node = std::make_unique<ir::Node>();
  node->op = def;
  node->id = p.id;
  bool named = def->is(ir::OpRole::placeholder) || def->is(ir::OpRole::variable);
  if (named != !p.name.empty())
    fail(ErrorKind::value, named ? "needs a name"
                                 : "has a name, which only placeholders and "
                                   "variables have");
  if (named &&
      !names.insert(std::string(def->is(ir::OpRole::variable) ? "v:" : "p:") + p.name).second)
    fail(ErrorKind::value, "the name '" + p.name + "' is used twice");
  node->name = p.name;
  std::vector<ir::TensorType> types;
  for (const auto& ref : p.inputs) {
    ir::Node* from = built[ref.node];
    node->inputs.push_back({from, int(ref.output)});
    types.push_back(from->type(int(ref.output)));
  }
  // State is written only into variables: read and assign take one, an in-place update a
  // read of one (never a constant's or a feed's bytes).
  const int targets = def->is(ir::OpRole::read) ? 1 : def->written_inputs();
  for (int i = 0; i < targets; ++i) {
    const ir::Node* target =
        size_t(i) < node->inputs.size() ? node->inputs[size_t(i)].node : nullptr;
    if (target && def->is(ir::OpRole::inplace_update))
      while (target->is(ir::OpRole::read)) target = target->inputs.at(0).node;
    if (!target || !target->is(ir::OpRole::variable))
      fail(ErrorKind::value, "input " + std::to_string(i) + " must be a variable");
  }
  std::vector<int> slots = input_slots(*def, p);
  std::vector<bool> present(def->inputs.size(), false);
  for (int s : slots) present[size_t(s)] = true;
  Attributes attrs = p.attrs;
  ir::check_attributes(p.op, def->attrs, attrs);
  if (def->check_attrs) def->check_attrs(p.op, attrs, present);
  if (def->is(ir::OpRole::variable) && !attrs.get_or<TensorData>("initial", TensorData()).defined())
    fail(ErrorKind::value, "a variable without a value");
  if (def->is(ir::OpRole::constant) && !attrs.get<TensorData>("value").defined())
    fail(ErrorKind::value, "a constant without a value");
  ir::InferContext ctx{p.op, types, attrs, nullptr};
  ir::check_input_dtypes(ctx, *def, slots);
  node->outputs = def->infer(ctx);
  for (const auto& type : node->outputs)
    if (is_static(type.shape)) numel(static_extents(type.shape));  // throws on overflow
  if (node->outputs != p.outputs) {
    std::string saved, inferred;
    for (const auto& t : p.outputs) saved += (saved.empty() ? "" : ", ") + t.str();
    for (const auto& t : node->outputs) inferred += (inferred.empty() ? "" : ", ") + t.str();
    fail(ErrorKind::value,
         "saved outputs (" + saved + ") differ from inferred ones (" + inferred + ")");
  }
  node->attrs = std::move(attrs);
  bool positional = p.input_slots.empty();
  if (!positional) node->input_slots = slots;
  return node;
}

std::unique_ptr<ir::Program> rebuild_program(const package::PackageContents& c,
                                             const std::string& path) {
  auto program = std::make_unique<ir::Program>();
  std::vector<ir::Node*> built;
  std::set<std::string> names;
  for (size_t i = 0; i < c.nodes.size(); ++i) {
    const auto& p = c.nodes[i];
    try {
      built.push_back(program->append(rebuild_node(p, built, names)));
    } catch (const Error& e) {
      std::string op;
      for (char ch : p.op.substr(0, 64)) op += (ch >= 32 && ch < 127) ? ch : '?';
      fail(ErrorKind::io, path + ": bad package: node " + std::to_string(i) + " (%" +
                              std::to_string(p.id) + " " + op + "): " + e.what());
    }
  }
  for (const auto& o : c.outputs) program->outputs().push_back({built[o.node], int(o.output)});
  return program;
}

// The graph fields of CompileOptions: the package fixes them.
void check_load_options(const CompileOptions& options) {
  if (!options.outputs.empty() || !options.disabled_passes.empty() || options.keep_pass_dumps ||
      !options.plan_for.empty())
    fail(ErrorKind::value,
         "load: outputs, disabled_passes, keep_pass_dumps and plan_for are fixed by the package");
}

}  // namespace

Executable load(const std::string& path, Device device, CompileOptions options) {
  check_load_options(options);
  io::MappedFile file = io::MappedFile::open(path);
  return package::load_bytes(file.bytes(), path, device, std::move(options));
}

Executable package::load_bytes(std::span<const std::byte> bytes, const std::string& path,
                               Device device, CompileOptions options) {
  check_load_options(options);
  package::PackageContents c = package::decode_package(bytes, path);
  if (c.graph_only)
    fail(ErrorKind::value, path +
                               ": a saved graph, not a compiled package: compile it first "
                               "(loom compile, or loom::load_graph and loom::compile)");

  auto impl = std::make_unique<Executable::Impl>();
  impl->device = device;
  impl->backend = &backend_for(device);
  impl->program = rebuild_program(c, path);
  options.device = device;
  compiler::declare_variables(*impl, options);
  compiler::prepare_runtime(*impl, options);
  if (impl->symbols != c.symbols)
    fail(ErrorKind::io, path + ": bad package: its symbols differ from its placeholders'");

  const std::string here = device_identity(device);
  const bool same = c.device_identity == here && c.loom_version == kVersion;
  if (same) {
    for (const auto& plan : c.plans) {
      auto& choices = impl->preset_tactics[plan.key];
      for (const auto& s : plan.steps) choices[s.node_id] = {s.kernel, s.tactic, s.ms, s.tried};
    }
  }
  {
    auto store_lock = impl->variables->lock();
    DeviceScope device_scope(*impl->backend);
    for (size_t p = 0; p < c.plans.size(); ++p) {
      const auto& plan = c.plans[p];
      runtime::Plan* planned = nullptr;
      try {
        planned = &impl->plan_for(plan.key);
      } catch (const Error& e) {
        // A binding the graph cannot take (a size that overflows) is the package's fault;
        // no kernel or no memory for a valid one is not.
        if (e.kind() == ErrorKind::device || e.kind() == ErrorKind::unsupported) throw;
        fail(ErrorKind::io, path + ": bad package: plan " + std::to_string(p) + ": " + e.what());
      }
      runtime::Plan& made = *planned;
      if (same && made.arena_bytes != plan.arena_bytes)
        impl->package_note += std::string(impl->package_note.empty() ? "" : "; ") +
                              "a plan's arena is " + std::to_string(made.arena_bytes) +
                              " B, the package's " + std::to_string(plan.arena_bytes) + " B";
    }
  }
  impl->stats = RunStats{};
  auto printable = [](const std::string& text) {
    std::string out;
    for (char ch : text.substr(0, 80)) out += (ch >= 32 && ch < 127) ? ch : '?';
    return out;
  };
  std::string note =
      same ? "kernels and tactics from the package (" + std::to_string(c.plans.size()) + " plans)"
           : "made on " + printable(c.device_identity) + " with Loom " + printable(c.loom_version) +
                 "; kernels and tactics chosen again on " + here + " with Loom " + kVersion;
  if (!c.references.empty()) {
    uint64_t bytes = 0;
    for (const auto& [key, ref] : c.references) bytes += key.second;
    note += "; " + std::to_string(c.references.size()) + " weights (" +
            std::to_string(bytes >> 20) + " MiB) read from " + std::to_string(c.files.size()) +
            (c.files.size() == 1 ? " referenced file" : " referenced files");
  }
  for (const auto& f : c.files) impl->weight_files.push_back(package::resolve_file(f.path, path));
  impl->package_note = note + (impl->package_note.empty() ? "" : "; " + impl->package_note);
  return make_executable(std::move(impl));
}

bool is_compiled_package(const std::string& path) {
  io::MappedFile file = io::MappedFile::open(path);
  return !package::header_says_graph(file.bytes(), path);
}

std::vector<std::string> referenced_files(const std::string& path) {
  io::MappedFile file = io::MappedFile::open(path);
  std::vector<std::string> out;
  for (const auto& f : package::read_file_table(file.bytes(), path)) out.push_back(f.path);
  return out;
}

SavedGraph load_graph(const std::string& path) {
  io::MappedFile file = io::MappedFile::open(path);
  package::PackageContents c = package::decode_package(file.bytes(), path);
  std::shared_ptr<ir::Program> program = rebuild_program(c, path);
  SavedGraph saved{Graph(program), {}};
  for (const auto& o : program->outputs()) saved.outputs.emplace_back(program, o.node, o.output);
  program->outputs().clear();  // compile() takes them from CompileOptions::outputs
  return saved;
}

}  // namespace loom
