// Callables: the call kernel, binding executables to call symbols (with the signature check),
// and running a callee inside its caller's run.
#include <algorithm>

#include "ir/op_registry.h"
#include "loom/error.h"
#include "runtime/executable_impl.h"

namespace loom {

namespace {

std::string types_str(const std::vector<ir::TensorType>& types) {
  std::string s;
  for (const auto& t : types) s += (s.empty() ? "" : ", ") + t.str();
  return s;
}

// Dims agree unless both are static and differ (a symbol is checked when bound at run time).
bool fits(const ir::TensorType& a, const ir::TensorType& b) {
  if (a.dtype != b.dtype || a.shape.size() != b.shape.size()) return false;
  for (size_t d = 0; d < a.shape.size(); ++d)
    if (a.shape[d].is_static() && b.shape[d].is_static() && a.shape[d] != b.shape[d]) return false;
  return true;
}

void check_callee(const Executable::Impl& caller, const std::string& symbol,
                  const Executable::Impl& callee) {
  auto refuse = [&](ErrorKind kind, const std::string& why) {
    fail(kind, "bind '" + symbol + "': " + why);
  };
  if (&callee == &caller) refuse(ErrorKind::value, "an executable cannot call itself");
  if (!(callee.device == caller.device))
    refuse(ErrorKind::device, "the callable runs on " + callee.device.str() + ", the caller on " +
                                  caller.device.str());
  if (callee.signature.writes_state)
    refuse(ErrorKind::unsupported, "a callable may not assign variables");
  if (callee.signature.has_calls)
    refuse(ErrorKind::unsupported, "a callable may not call callables itself (not yet)");
  std::vector<ir::TensorType> inputs;
  for (const auto& [name, type] : callee.signature.inputs) inputs.push_back(type);
  const auto& outputs = callee.signature.outputs;
  for (const runtime::CallSite& site : caller.call_sites.at(symbol)) {
    bool ok =
        inputs.size() == site.inputs.size() && outputs.size() == 1 && fits(outputs[0], site.output);
    for (size_t i = 0; ok && i < inputs.size(); ++i) ok = fits(inputs[i], site.inputs[i]);
    if (!ok)
      refuse(ErrorKind::shape, "the callable's signature (" + types_str(inputs) + ") -> (" +
                                   types_str(outputs) + ") does not fit the call's (" +
                                   types_str(site.inputs) + ") -> (" + site.output.str() + ")");
  }
}

void run_call(KernelContext& ctx, const ir::Node& node, std::span<const TensorView> in,
              std::span<TensorView> out) {
  const std::string& symbol = node.attrs.get<std::string>("symbol");
  if (!ctx.callables) fail(ErrorKind::unsupported, "call '" + symbol + "' outside a run");
  auto it = ctx.callables->bound.find(symbol);
  if (it == ctx.callables->bound.end() || !it->second)
    fail(ErrorKind::value, "call: no executable is bound to '" + symbol +
                               "' (CompileOptions::callables or Executable::bind)");
  Executable::Impl& callee = impl_of(*it->second);
  Feeds feeds;
  for (size_t i = 0; i < in.size(); ++i) {
    const TensorView& v = in[i];
    feeds.emplace(callee.signature.inputs.at(i).first,
                  TensorData::wrap(v.data, v.dtype, v.shape, v.strides, callee.device, nullptr));
  }
  callee.run_inline(ctx.stream, feeds, out);
}

}  // namespace

void record_call_signature(Executable::Impl& impl) {
  runtime::CallSignature& sig = impl.signature;
  for (const auto& node : impl.program->nodes()) {
    const ir::OpDef& def = *node->op;
    if (def.is(ir::OpRole::placeholder)) sig.inputs.push_back({node->name, node->type()});
    if (def.writes_state()) sig.writes_state = true;
    if (node->op_name() == "call") {
      sig.has_calls = true;
      runtime::CallSite site;
      for (const auto& v : node->inputs) site.inputs.push_back(v.node->type(v.output));
      site.output = node->type();
      impl.call_sites[node->attrs.get<std::string>("symbol")].push_back(std::move(site));
    }
  }
  for (const auto& v : impl.program->outputs()) sig.outputs.push_back(v.node->type(v.output));
  for (const auto& [symbol, sites] : impl.call_sites) impl.callables.bound[symbol] = nullptr;
}

void Executable::Impl::run_inline(void* caller_stream, const Feeds& feeds,
                                  std::span<TensorView> out) {
  std::lock_guard<std::mutex> lock(mutex);
  auto store_lock = variables->lock();
  runtime::Plan& plan = plan_for(bind(feeds));
  if (plan.outputs.size() != out.size())
    fail(ErrorKind::internal, "call: callee output count changed");
  for (size_t i = 0; i < out.size(); ++i)
    if (plan.outputs[i].dtype != out[i].dtype || plan.outputs[i].shape != out[i].shape)
      fail(ErrorKind::shape, std::string("call: the callable returned ") +
                                 dtype_name(plan.outputs[i].dtype) +
                                 to_string(plan.outputs[i].shape) + ", the call declared " +
                                 dtype_name(out[i].dtype) + to_string(out[i].shape));
  // The caller's stream for this call: the callee's work is ordered with (and captured in)
  // the caller's. The executable's lock makes the swap invisible to its own runs.
  void* own = stream;
  stream = caller_stream;
  try {
    copy_feeds(plan, feeds);
    launch(plan.steps);
    for (size_t i = 0; i < out.size(); ++i) copy_view(out[i].data, plan.outputs[i]);
  } catch (...) {
    stream = own;
    throw;
  }
  stream = own;
  ++plan.runs;
  in_place_feeds.clear();
}

void Executable::Impl::callables_stamp(std::vector<uint64_t>& stamp) const {
  stamp.clear();
  stamp.push_back(bindings_version);
  for (const auto& [symbol, callee] : callables.bound)
    stamp.push_back(callee ? impl_of(*callee).plans_generation.load() : 0);
}

bool Executable::Impl::callables_stamp_matches(const std::vector<uint64_t>& stamp) const {
  if (stamp.size() != callables.bound.size() + 1 || stamp[0] != bindings_version) return false;
  size_t i = 1;
  for (const auto& [symbol, callee] : callables.bound)
    if (stamp[i++] != (callee ? impl_of(*callee).plans_generation.load() : 0)) return false;
  return true;
}

void Executable::bind(const std::string& symbol, std::shared_ptr<Executable> callee) {
  Impl& impl = checked_impl(impl_);
  std::lock_guard<std::mutex> lock(impl.mutex);
  if (!impl.call_sites.count(symbol)) {
    std::string known;
    for (const auto& [s, sites] : impl.call_sites) known += (known.empty() ? "" : ", ") + s;
    fail(ErrorKind::value, "bind '" + symbol + "': the graph has no call of that name (calls: " +
                               (known.empty() ? "none" : known) + ")");
  }
  if (callee) check_callee(impl, symbol, impl_of(*callee));
  impl.callables.bound[symbol] = std::move(callee);
  ++impl.bindings_version;
}

std::map<std::string, std::shared_ptr<Executable>> Executable::callables() const {
  Impl& impl = checked_impl(impl_);
  std::lock_guard<std::mutex> lock(impl.mutex);
  return impl.callables.bound;
}

std::string Executable::signature() const {
  const Impl& impl = checked_impl(impl_);
  std::string in;
  for (const auto& [name, type] : impl.signature.inputs)
    in += (in.empty() ? "" : ", ") + name + " " + type.str();
  return "(" + in + ") -> (" + types_str(impl.signature.outputs) + ")";
}

Kernel call_kernel(const std::string& name) { return Kernel(name, run_call); }

}  // namespace loom
