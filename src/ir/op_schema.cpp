// Op schemas: their text forms, the public look-ups, and the checks Graph::add_node makes
// against them (attributes: names, types, ranges, defaults; inputs: dtypes).
#include <algorithm>
#include <cmath>
#include <sstream>

#include "ir/op_registry.h"
#include "loom/error.h"

namespace loom {

const char* attr_type_name(AttrType type) {
  switch (type) {
    case AttrType::integer:
      return "int";
    case AttrType::real:
      return "float";
    case AttrType::boolean:
      return "bool";
    case AttrType::string:
      return "string";
    case AttrType::dtype:
      return "dtype";
    case AttrType::int_list:
      return "int list";
    case AttrType::float_list:
      return "float list";
    case AttrType::shape:
      return "shape";
    case AttrType::tensor:
      return "tensor";
    case AttrType::record:
      return "record";
  }
  return "?";
}

namespace {

std::string number_text(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

std::string range_text(const AttrSpec& spec) {
  if (spec.min && spec.max) return number_text(*spec.min) + " to " + number_text(*spec.max);
  if (spec.min) return ">= " + number_text(*spec.min);
  if (spec.max) return "<= " + number_text(*spec.max);
  return "";
}

std::string allowed_text(const AttrSpec& spec) {
  std::string s;
  for (const auto& v : spec.allowed) s += (s.empty() ? "" : ", ") + attr_to_string(v);
  return s;
}

std::string dtype_list(const std::vector<DType>& dtypes) {
  std::string s;
  for (DType d : dtypes) s += (s.empty() ? "" : ", ") + std::string(dtype_name(d));
  return s;
}

}  // namespace

std::string AttrSpec::str() const {
  std::string s = name + ": " + attr_type_name(type);
  if (type == AttrType::record && record) s += " " + record->name;
  if (default_value) {
    s += " = " + attr_to_string(*default_value);
  } else if (required) {
    s += " (required)";
  } else {
    s += " (optional)";
  }
  std::string range = range_text(*this);
  if (!range.empty()) s += " [" + range + "]";
  if (!allowed.empty()) s += " {" + allowed_text(*this) + "}";
  if (!doc.empty()) s += "  " + doc;
  return s;
}

std::string InputSpec::str() const {
  std::string s = name + (optional ? "?" : "") + (variadic ? "..." : "");
  if (!type_var.empty() || !dtypes.empty()) s += ":";
  if (!type_var.empty()) s += " " + type_var;
  if (!dtypes.empty()) s += (type_var.empty() ? " {" : " in {") + dtype_list(dtypes) + "}";
  if (!doc.empty()) s += "  " + doc;
  return s;
}

const AttrSpec* OpSchema::attribute(const std::string& attr_name) const {
  for (const auto& a : attributes)
    if (a.name == attr_name) return &a;
  return nullptr;
}

const InputSpec* OpSchema::input(const std::string& input_name) const {
  for (const auto& i : inputs)
    if (i.name == input_name) return &i;
  return nullptr;
}

std::string OpSchema::str() const {
  std::string s = name + "(";
  for (size_t i = 0; i < inputs.size(); ++i)
    s += (i ? ", " : "") + inputs[i].name + (inputs[i].optional ? "?" : "") +
         (inputs[i].variadic ? "..." : "");
  s += ")  v" + std::to_string(version) + (role == "compute" ? "" : ", " + role) +
       (internal ? ", internal" : "") + (has_decomposition ? ", decomposable" : "") + "\n";
  if (!doc.empty()) s += "  " + doc + "\n";
  if (!inputs.empty()) s += "  inputs:\n";
  for (const auto& i : inputs) s += "    " + i.str() + "\n";
  if (!attributes.empty()) s += "  attributes:\n";
  for (const auto& a : attributes) s += "    " + a.str() + "\n";
  if (!outputs.empty()) s += "  outputs:\n";
  for (const auto& o : outputs)
    s += "    " + o.name + (o.variadic ? "..." : "") + (o.doc.empty() ? "" : "  " + o.doc) + "\n";
  return s;
}

std::vector<std::string> op_names() { return ir::OpRegistry::instance().names(); }

const OpSchema& op_schema(const std::string& name) {
  return ir::OpRegistry::instance().schema(name);
}

}  // namespace loom

namespace loom::ir {

const char* op_role_name(OpRole role) {
  switch (role) {
    case OpRole::compute:
      return "compute";
    case OpRole::placeholder:
      return "placeholder";
    case OpRole::constant:
      return "constant";
    case OpRole::variable:
      return "variable";
    case OpRole::read:
      return "read";
    case OpRole::assign:
      return "assign";
    case OpRole::inplace_update:
      return "inplace_update";
  }
  return "?";
}

int OpDef::input_index(const std::string& input_name) const {
  for (size_t i = 0; i < inputs.size(); ++i)
    if (inputs[i].name == input_name) return int(i);
  return -1;
}

const AttrSpec* OpDef::attr(const std::string& attr_name) const {
  for (const auto& a : attrs)
    if (a.name == attr_name) return &a;
  return nullptr;
}

namespace {

const char* value_type_name(const AttrValue& v) {
  static const char* const names[] = {"int",   "float", "bool",   "string",     "int list",
                                      "dtype", "shape", "tensor", "float list", "record"};
  return names[v.index()];
}

std::string attr_list(const std::vector<AttrSpec>& specs) {
  if (specs.empty()) return "no attributes";
  std::string s;
  for (const auto& a : specs) {
    s += (s.empty() ? "" : ", ") + a.name + " (" + attr_type_name(a.type);
    if (a.default_value) s += ", default " + attr_to_string(*a.default_value);
    if (a.required) s += ", required";
    s += ")";
  }
  return s;
}

void check_number(const std::string& what, const AttrSpec& spec, double v) {
  bool below = spec.min && !(v >= *spec.min);
  bool above = spec.max && !(v <= *spec.max);
  if (below || above)
    fail(ErrorKind::value,
         what + " = " + number_text(v) + " is out of range (" + range_text(spec) + ")");
}

[[noreturn]] void wrong_type(const std::string& what, const AttrSpec& spec, const AttrValue& v) {
  std::string type = attr_type_name(spec.type);
  if (spec.type == AttrType::record && spec.record) type += " " + spec.record->name;
  fail(ErrorKind::value, what + " must be " + (type[0] == 'i' ? "an " : "a ") + type + ", got " +
                             value_type_name(v) + " " + attr_to_string(v));
}

AttrValue coerce(const std::string& op, const AttrSpec& spec, const AttrValue& value) {
  const std::string what = op + ": attribute '" + spec.name + "'";
  switch (spec.type) {
    case AttrType::integer:
      if (const auto* i = std::get_if<int64_t>(&value)) {
        check_number(what, spec, double(*i));
        return *i;
      }
      break;
    case AttrType::real:
      if (const auto* d = std::get_if<double>(&value)) {
        check_number(what, spec, *d);
        return *d;
      }
      if (const auto* i = std::get_if<int64_t>(&value)) {
        check_number(what, spec, double(*i));
        return double(*i);
      }
      break;
    case AttrType::boolean:
      if (std::holds_alternative<bool>(value)) return value;
      break;
    case AttrType::string:
      if (std::holds_alternative<std::string>(value)) return value;
      break;
    case AttrType::dtype:
      if (std::holds_alternative<DType>(value)) return value;
      if (const auto* s = std::get_if<std::string>(&value)) {
        try {
          return dtype_from_name(*s);
        } catch (const Error&) {
          fail(ErrorKind::dtype, what + ": unknown dtype '" + *s + "'");
        }
      }
      break;
    case AttrType::int_list:
      if (const auto* l = std::get_if<std::vector<int64_t>>(&value)) {
        for (int64_t i : *l) check_number(what, spec, double(i));
        return *l;
      }
      if (const auto* shape = std::get_if<Shape>(&value); shape && is_static(*shape)) {
        Extents e = static_extents(*shape);
        for (int64_t i : e) check_number(what, spec, double(i));
        return std::vector<int64_t>(e.begin(), e.end());
      }
      break;
    case AttrType::float_list:
      if (const auto* l = std::get_if<std::vector<double>>(&value)) {
        for (double d : *l) check_number(what, spec, d);
        return *l;
      }
      if (const auto* l = std::get_if<std::vector<int64_t>>(&value)) {
        std::vector<double> out(l->begin(), l->end());
        for (double d : out) check_number(what, spec, d);
        return out;
      }
      break;
    case AttrType::shape:
      if (std::holds_alternative<Shape>(value)) return value;
      if (const auto* l = std::get_if<std::vector<int64_t>>(&value))
        return Shape(l->begin(), l->end());
      break;
    case AttrType::tensor:
      if (const auto* t = std::get_if<TensorData>(&value)) {
        if (!t->defined()) fail(ErrorKind::value, what + " is an empty TensorData");
        return value;
      }
      break;
    case AttrType::record:
      if (const auto* r = std::get_if<Record>(&value)) {
        if (!spec.record) fail(ErrorKind::internal, what + " declares no record type");
        if (!r->type().empty() && r->type() != spec.record->name)
          fail(ErrorKind::value,
               what + " must be a " + spec.record->name + " record, not " + r->type());
        Attributes fields = r->fields();
        check_attributes(op + " " + spec.name, spec.record->fields, fields);
        return Record(spec.record->name, std::move(fields));
      }
      break;
  }
  wrong_type(what, spec, value);
}

}  // namespace

void check_attributes(const std::string& op, const std::vector<AttrSpec>& specs,
                      Attributes& attrs) {
  Attributes checked;
  for (const auto& [name, value] : attrs.items()) {
    auto spec =
        std::find_if(specs.begin(), specs.end(), [&](const AttrSpec& a) { return a.name == name; });
    if (spec == specs.end())
      fail(ErrorKind::value,
           op + ": unknown attribute '" + name + "'; " + op + " takes " + attr_list(specs));
    AttrValue v = coerce(op, *spec, value);
    bool allowed = spec->allowed.empty() ||
                   std::any_of(spec->allowed.begin(), spec->allowed.end(), [&](const AttrValue& a) {
                     return Attributes{{name, a}} == Attributes{{name, v}};
                   });
    if (!allowed)
      fail(ErrorKind::value, op + ": attribute '" + name + "' = " + attr_to_string(v) +
                                 " is not one of " + allowed_text(*spec));
    checked.set(name, std::move(v));
  }
  for (const auto& spec : specs) {
    if (checked.has(spec.name)) continue;
    if (spec.default_value) {
      checked.set(spec.name, *spec.default_value);
    } else if (spec.required) {
      fail(ErrorKind::value, op + ": attribute '" + spec.name + "' is required (" +
                                 attr_type_name(spec.type) + (spec.doc.empty() ? "" : ": ") +
                                 spec.doc + ")");
    }
  }
  attrs = std::move(checked);
}

void check_input_dtypes(const InferContext& ctx, const OpDef& def, const std::vector<int>& slots) {
  for (size_t i = 0; i < slots.size() && i < ctx.inputs.size(); ++i) {
    const InputSpec& spec = def.inputs.at(size_t(slots[i]));
    DType d = ctx.input(i).dtype;
    if (!spec.dtypes.empty() &&
        std::find(spec.dtypes.begin(), spec.dtypes.end(), d) == spec.dtypes.end())
      ctx.fail(ErrorKind::dtype, "input '" + spec.name + "' does not support dtype " +
                                     dtype_name(d) + "; expected " + dtype_list(spec.dtypes));
    if (spec.type_var.empty()) continue;
    for (size_t j = 0; j < i; ++j) {
      const InputSpec& other = def.inputs.at(size_t(slots[j]));
      if (other.type_var == spec.type_var && ctx.input(j).dtype != d)
        ctx.fail(ErrorKind::dtype, "inputs '" + other.name + "' and '" + spec.name +
                                       "' must have one dtype, got " +
                                       dtype_name(ctx.input(j).dtype) + " and " + dtype_name(d) +
                                       "; cast one of them");
    }
  }
}

}  // namespace loom::ir
