// loom::save: the executable's program after the passes, its plans (kernel, tactic and
// measured time per step; the arena layout) and the variables' current values, in the format
// of package_format.h, written to a temporary file renamed over the destination. Weights
// whose bytes are a tensor of a given GGUF or safetensors file are referenced, not copied.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>

#include "ir/op_registry.h"
#include "loom/error.h"
#include "loom/package.h"
#include "loom/version.h"
#include "package/package_files.h"
#include "package/package_format.h"
#include "runtime/executable_impl.h"

namespace loom {

namespace {

package::PackedStep packed_step(const runtime::Step& step) {
  return {step.node->id, step.kernel->name, step.tactic.name, step.measured_ms, step.tried};
}

// The program's nodes and outputs; `value_of` gives a variable's value to save.
void pack_program(const ir::Program& program, package::PackageContents& c,
                  const std::function<TensorData(const ir::Node&)>& value_of) {
  std::map<const ir::Node*, uint32_t> index;
  for (const auto& node : program.nodes()) {
    const ir::Node* n = node.get();
    package::PackedNode p;
    p.id = n->id;
    p.op = n->op_name();
    p.op_version = uint32_t(n->op->version);
    p.name = n->name;
    for (const auto& in : n->inputs) p.inputs.push_back({index.at(in.node), uint32_t(in.output)});
    p.input_slots.assign(n->input_slots.begin(), n->input_slots.end());
    p.attrs = n->attrs;
    if (n->is(ir::OpRole::variable)) p.attrs.set("initial", value_of(*n));
    // Host bytes, held by the contents: the encoder and the weight matching see the same
    // data (package::tensor_key names a tensor by where its bytes are).
    std::vector<std::pair<std::string, TensorData>> tensors;
    for (const auto& [name, value] : p.attrs.items())
      if (const auto* t = std::get_if<TensorData>(&value); t && t->defined())
        tensors.emplace_back(name, t->to_host().contiguous());
    for (auto& [name, t] : tensors) p.attrs.set(name, std::move(t));
    p.outputs = n->outputs;
    index[n] = uint32_t(c.nodes.size());
    c.nodes.push_back(std::move(p));
  }
  for (const auto& o : program.outputs())
    c.outputs.push_back({index.at(o.node), uint32_t(o.output)});
}

package::PackageContents contents_of(Executable::Impl& impl) {
  package::PackageContents c;
  c.format_version = kPackageFormatVersion;
  c.loom_version = kVersion;
  c.device = impl.device.str();
  c.device_identity = device_identity(impl.device);
  c.symbols = impl.symbols;
  // A variable is saved with its value now (a weight set after compile, a cache's state).
  pack_program(*impl.program, c,
               [&](const ir::Node& n) { return impl.variables->get(n.name).to_host(); });
  for (const auto& [key, plan] : impl.plans) {
    package::PackedPlan p;
    p.key = key;
    p.arena_bytes = plan->arena_bytes;
    for (const auto& s : plan->steps) p.steps.push_back(packed_step(s));
    for (const auto& s : plan->assign_steps) p.steps.push_back(packed_step(s));
    for (const auto& b : plan->buffers)
      p.buffers.push_back({b.node_id, b.output, b.offset, b.bytes, b.first, b.last});
    c.plans.push_back(std::move(p));
  }
  return c;
}

void write_file(const std::vector<std::byte>& bytes, const std::string& path) {
  std::string temporary = path + ".tmp";
  {
    std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
    if (!out) fail(ErrorKind::io, "save: cannot write '" + temporary + "'");
    out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
    out.close();
    if (!out) {
      std::remove(temporary.c_str());
      fail(ErrorKind::io, "save: writing '" + temporary + "' failed (disk full?)");
    }
  }
  if (std::rename(temporary.c_str(), path.c_str()) != 0) {
    std::remove(temporary.c_str());
    fail(ErrorKind::io, "save: cannot rename '" + temporary + "' to '" + path + "'");
  }
}

}  // namespace

void save(const Executable& exe, const std::string& path, const SaveOptions& options) {
  Executable::Impl& impl = impl_of(exe);
  std::vector<std::byte> bytes;
  {
    std::lock_guard<std::mutex> lock(impl.mutex);
    auto store_lock = impl.variables->lock();
    package::PackageContents c = contents_of(impl);
    if (!options.embed_weights) {
      std::vector<std::string> files = options.weight_files;
      // The files a loaded package referenced, where they still are (else its weights are
      // embedded: the executable holds them).
      for (const auto& f : impl.weight_files) {
        std::error_code error;
        if (std::filesystem::is_regular_file(f, error)) files.push_back(f);
      }
      package::reference_weights(c, files, path, options.absolute_paths);
    }
    bytes = package::encode_package(c);
  }
  write_file(bytes, path);
}

void save_graph(const Graph& graph, const std::vector<Tensor>& outputs, const std::string& path) {
  package::PackageContents c;
  c.format_version = kPackageFormatVersion;
  c.graph_only = true;
  c.loom_version = kVersion;
  const ir::Program& program = *graph.program();
  pack_program(program, c, [](const ir::Node& n) { return n.attrs.get<TensorData>("initial"); });
  std::map<const ir::Node*, uint32_t> index;
  for (size_t i = 0; i < program.nodes().size(); ++i) index[program.nodes()[i].get()] = uint32_t(i);
  for (const auto& t : outputs) {
    if (!t.defined()) fail(ErrorKind::value, "save_graph: an output tensor is undefined");
    if (t.program() != graph.program())
      fail(ErrorKind::value, "save_graph: an output tensor belongs to another graph");
    c.outputs.push_back({index.at(t.node()), uint32_t(t.output())});
  }
  write_file(package::encode_package(c), path);
}

}  // namespace loom
