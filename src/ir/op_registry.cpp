#include "ir/op_registry.h"

namespace loom::ir {

Shape InferContext::resolve(const Shape& shape) const {
  if (!binding) return shape;
  Shape out = shape;
  for (auto& d : out) {
    if (!d.is_symbol()) continue;
    auto it = binding->find(d.symbol());
    if (it != binding->end()) d = Dim(it->second);
  }
  return out;
}

void InferContext::fail(ErrorKind kind, const std::string& message) const {
  std::string s = op + "(";
  for (size_t i = 0; i < inputs.size(); ++i) s += (i ? ", " : "") + inputs[i].str();
  loom::fail(kind, s + "): " + message);
}

void InferContext::expect_same_dtype() const {
  for (size_t i = 1; i < inputs.size(); ++i)
    if (inputs[i].dtype != inputs[0].dtype)
      fail(ErrorKind::dtype, std::string("operands have different dtypes ") +
                                 dtype_name(inputs[0].dtype) + " and " +
                                 dtype_name(inputs[i].dtype) + "; cast one of them");
}

void InferContext::expect_float(size_t input) const {
  if (!is_float(inputs.at(input).dtype))
    fail(ErrorKind::dtype, std::string("input ") + std::to_string(input) +
                               " must be f32, f16 or bf16, not " +
                               dtype_name(inputs.at(input).dtype));
}

void OpRegistry::add(OpDef def) {
  std::string name = def.name;
  if (ops_.count(name)) loom::fail(ErrorKind::internal, "op '" + name + "' registered twice");
  def.min_inputs = 0;
  def.max_inputs = int(def.inputs.size());
  for (size_t i = 0; i < def.inputs.size(); ++i) {
    const InputSpec& in = def.inputs[i];
    if (in.variadic && i + 1 != def.inputs.size())
      loom::fail(ErrorKind::internal, "op '" + name + "': only the last input may be variadic");
    if (in.variadic) def.max_inputs = -1;
    if (!in.optional) def.min_inputs = int(i) + 1;
  }
  for (const AttrSpec& a : def.attrs)
    if (a.default_value) {
      Attributes check{{a.name, *a.default_value}};
      check_attributes(name, {a}, check);  // a default must pass its own spec
    }
  OpSchema schema{.name = name,
                  .doc = def.doc,
                  .version = def.version,
                  .role = op_role_name(def.role),
                  .internal = def.internal,
                  .inputs = def.inputs,
                  .attributes = def.attrs,
                  .outputs = def.outputs,
                  .has_decomposition = bool(def.decompose)};
  schemas_.emplace(name, std::move(schema));
  ops_.emplace(name, std::move(def));
}

const OpSchema& OpRegistry::schema(const std::string& name) const {
  at(name);
  return schemas_.at(name);
}

const OpDef* OpRegistry::find(const std::string& name) const {
  auto it = ops_.find(name);
  return it == ops_.end() ? nullptr : &it->second;
}

const OpDef& OpRegistry::at(const std::string& name) const {
  const OpDef* def = find(name);
  if (!def) loom::fail(ErrorKind::unsupported, "unknown op '" + name + "'");
  return *def;
}

std::vector<std::string> OpRegistry::names() const {
  std::vector<std::string> out;
  for (const auto& [name, def] : ops_) out.push_back(name);
  return out;
}

}  // namespace loom::ir
