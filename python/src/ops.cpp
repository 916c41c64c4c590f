// Every op function of include/loom/ops.h as loom.<name>. Binary ops also take a Python
// number or a NumPy array for one operand (a constant of the other operand's dtype).
#include "loom/ops.h"

#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <deque>

#include "arg_types.h"
#include "bindings.h"
#include "loom/error.h"
#include "loom/op_schema.h"

namespace loom::python {

Tensor scalar_like(const Tensor& like, double value);
Attributes attributes_from_py(nb::handle dict);

namespace {

std::string repr_of(nb::handle obj) { return nb::cast<std::string>(nb::repr(obj)); }

// Resolves operands that may be numbers or NumPy arrays against the first Tensor among them.
std::vector<Tensor> operands(const char* op, std::initializer_list<const OperandArg*> args) {
  const Tensor* like = nullptr;
  for (const OperandArg* arg : args) {
    if (nb::isinstance<Tensor>(arg->obj)) {
      like = &nb::cast<const Tensor&>(arg->obj);
      break;
    }
  }
  if (!like) fail(ErrorKind::value, std::string(op) + ": at least one operand must be a Tensor");
  std::vector<Tensor> result;
  for (const OperandArg* arg : args) result.push_back(operand_like(*like, arg->obj, op));
  return result;
}

template <Tensor (*Fn)(const Tensor&, const Tensor&)>
void def_binary(nb::module_& m, const char* name, const char* doc) {
  m.def(
      name,
      [name](OperandArg a, OperandArg b) {
        std::vector<Tensor> ab = operands(name, {&a, &b});
        return Fn(ab[0], ab[1]);
      },
      nb::arg("a"), nb::arg("b"), doc);
}

template <Tensor (*Fn)(const Tensor&)>
void def_unary(nb::module_& m, const char* name, const char* doc) {
  m.def(
      name, [](const Tensor& x) { return Fn(x); }, nb::arg("x"), doc);
}

// An int attribute: Python ints and NumPy integers; too large for 64 bits is an error.
int64_t attr_int(const std::string& key, nb::handle value) {
  nb::object index = nb::steal(PyNumber_Index(value.ptr()));
  if (!index.is_valid()) throw nb::python_error();
  int overflow = 0;
  long long v = PyLong_AsLongLongAndOverflow(index.ptr(), &overflow);
  if (overflow)
    fail(ErrorKind::value,
         "attribute '" + key + "' = " + repr_of(value) + " does not fit in a 64-bit integer");
  return int64_t(v);
}

// NumPy scalars (numpy.float32, numpy.bool_) are not Python floats or bools.
bool is_numpy_scalar(nb::handle value) {
  return std::string_view(Py_TYPE(value.ptr())->tp_name).starts_with("numpy.");
}

bool is_float_scalar(nb::handle value) {
  return PyFloat_Check(value.ptr()) ||
         (is_numpy_scalar(value) && !PyIndex_Check(value.ptr()) && nb::hasattr(value, "__float__"));
}

bool is_bool_scalar(nb::handle value) {
  return PyBool_Check(value.ptr()) ||
         (is_numpy_scalar(value) &&
          std::string_view(Py_TYPE(value.ptr())->tp_name).starts_with("numpy.bool"));
}

AttrValue attr_from_py(const std::string& key, nb::handle value);

Attributes attributes_from_dict(nb::handle dict, const std::string& what) {
  Attributes attrs;
  for (auto [key, value] : nb::borrow<nb::dict>(dict)) {
    if (!PyUnicode_Check(key.ptr())) fail(ErrorKind::value, what + " names must be str");
    std::string name = nb::cast<std::string>(key);
    attrs.set(name, attr_from_py(name, value));
  }
  return attrs;
}

// Python values as attributes; the op's schema then takes ints for floats, lists for shapes
// and dtype names for dtypes, and rejects the rest with a message naming the attribute.
AttrValue attr_from_py(const std::string& key, nb::handle value) {
  PyObject* p = value.ptr();
  if (is_bool_scalar(value)) return PyObject_IsTrue(p) == 1;
  if (nb::isinstance<DType>(value)) return nb::cast<DType>(value);
  if (PyUnicode_Check(p)) return nb::cast<std::string>(value);
  if (is_float_scalar(value)) return nb::cast<double>(value.attr("__float__")());
  if (PyIndex_Check(p)) return attr_int(key, value);
  if (PyDict_Check(p)) return Record("", attributes_from_dict(value, "record field"));
  if (PyList_Check(p) || PyTuple_Check(p)) {
    bool any_symbol = false, any_float = false;
    for (nb::handle item : nb::borrow<nb::sequence>(value)) {
      any_symbol |= PyUnicode_Check(item.ptr()) != 0;
      any_float |= is_float_scalar(item);
    }
    // A list with symbol names is a Shape; with floats a float list; else a list of ints.
    if (any_symbol) return shape_from_py(value);
    if (any_float) {
      std::vector<double> out;
      for (nb::handle item : nb::borrow<nb::sequence>(value)) {
        if (!is_float_scalar(item) && !PyIndex_Check(item.ptr()))
          fail(ErrorKind::value, "attribute '" + key + "': " + repr_of(item) + " is not a number");
        out.push_back(nb::cast<double>(item.attr("__float__")()));
      }
      return out;
    }
    std::vector<int64_t> out;
    for (nb::handle item : nb::borrow<nb::sequence>(value)) {
      if (is_bool_scalar(item) || !PyIndex_Check(item.ptr()))
        fail(ErrorKind::value,
             "attribute '" + key + "': " + repr_of(item) + " is not an int, float or symbol name");
      out.push_back(attr_int(key, item));
    }
    return out;
  }
  try {
    return tensor_data_from_py(value, std::nullopt, "attribute '" + key + "'").clone();
  } catch (loom::Error&) {
    fail(ErrorKind::value, "attribute '" + key + "' = " + repr_of(value) +
                               " is not an int, float, bool, str, dtype, list, dict or array");
  }
}

nb::object attr_to_py(const AttrValue& value) {
  return std::visit(
      [](const auto& v) -> nb::object {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, Shape>) {
          return nb::list(shape_to_py(v));
        } else if constexpr (std::is_same_v<T, Record>) {
          nb::dict d;
          for (const auto& [name, field] : v.fields().items()) d[name.c_str()] = attr_to_py(field);
          return d;
        } else if constexpr (std::is_same_v<T, std::vector<int64_t>> ||
                             std::is_same_v<T, std::vector<double>>) {
          nb::list l;
          for (auto x : v) l.append(x);
          return l;
        } else {
          return nb::cast(v);
        }
      },
      value);
}

// A docstring from the op's schema: its doc, a note on the Python form, then the schema.
// Kept alive for the module's life (nanobind keeps the pointer).
const char* schema_doc(const std::string& op, const std::string& note = "") {
  static std::deque<std::string> docs;
  const OpSchema& schema = op_schema(op);
  // The schema's text without its doc line, which leads the docstring already.
  std::string text = schema.str();
  std::string doc_line = "  " + schema.doc + "\n";
  if (size_t at = text.find(doc_line); !schema.doc.empty() && at != std::string::npos)
    text.erase(at, doc_line.size());
  return docs
      .emplace_back(schema.doc + (note.empty() ? "" : "\n\n" + note) + "\n\nOp schema:\n" + text)
      .c_str();
}

// Inputs as a list (None for an absent optional input) or a dict by name.
std::vector<Tensor> add_node_py(const std::string& op, nb::handle inputs, nb::handle attrs,
                                const Graph* graph) {
  Attributes a;
  try {
    a = attributes_from_py(attrs);
  } catch (const Error& e) {
    fail(e.kind(), op + ": " + e.what());
  }
  auto graph_for = [&](const Tensor* first) -> Graph {
    if (graph) return *graph;
    if (!first) fail(ErrorKind::value, "add_node: use Graph.add_node for ops without inputs");
    return graph_of(*first);
  };
  if (PyDict_Check(inputs.ptr())) {
    Graph::NamedInputs named;
    for (auto [key, value] : nb::borrow<nb::dict>(inputs)) {
      if (!PyUnicode_Check(key.ptr())) fail(ErrorKind::value, "add_node: input names must be str");
      named.emplace_back(nb::cast<std::string>(key),
                         value.is_none() ? Tensor() : nb::cast<Tensor>(value));
    }
    const Tensor* first = nullptr;
    for (const auto& [name, t] : named)
      if (t.defined() && !first) first = &t;
    return graph_for(first).add_node(op, named, std::move(a));
  }
  if (!PyList_Check(inputs.ptr()) && !PyTuple_Check(inputs.ptr()))
    fail(ErrorKind::value, "add_node: inputs must be a list or a dict of Tensors");
  std::vector<Tensor> list;
  for (nb::handle item : nb::borrow<nb::sequence>(inputs))
    list.push_back(item.is_none() ? Tensor() : nb::cast<Tensor>(item));
  const Tensor* first = nullptr;
  for (const auto& t : list)
    if (t.defined() && !first) first = &t;
  return graph_for(first).add_node(op, list, std::move(a));
}

void bind_schema(nb::module_& m) {
  nb::class_<InputSpec>(m, "InputSpec", "One declared input of an op.")
      .def_ro("name", &InputSpec::name)
      .def_ro("doc", &InputSpec::doc)
      .def_ro("dtypes", &InputSpec::dtypes, "Allowed dtypes; empty: any.")
      .def_ro("type_var", &InputSpec::type_var, "Inputs naming one type variable share a dtype.")
      .def_ro("optional", &InputSpec::optional)
      .def_ro("variadic", &InputSpec::variadic)
      .def("__str__", &InputSpec::str)
      .def("__repr__", [](const InputSpec& s) { return "<InputSpec " + s.str() + ">"; });
  nb::class_<AttrSpec>(m, "AttrSpec", "One declared attribute of an op.")
      .def_ro("name", &AttrSpec::name)
      .def_prop_ro("type", [](const AttrSpec& s) { return std::string(attr_type_name(s.type)); })
      .def_prop_ro(
          "default",
          [](const AttrSpec& s) {
            return s.default_value ? attr_to_py(*s.default_value) : nb::none();
          },
          "The value when not given; None when required or optional.")
      .def_ro("required", &AttrSpec::required)
      .def_ro("doc", &AttrSpec::doc)
      .def_ro("min", &AttrSpec::min)
      .def_ro("max", &AttrSpec::max)
      .def_prop_ro("allowed",
                   [](const AttrSpec& s) {
                     nb::list l;
                     for (const auto& v : s.allowed) l.append(attr_to_py(v));
                     return l;
                   })
      .def("__str__", &AttrSpec::str)
      .def("__repr__", [](const AttrSpec& s) { return "<AttrSpec " + s.str() + ">"; });
  nb::class_<OutputSpec>(m, "OutputSpec", "One declared output of an op.")
      .def_ro("name", &OutputSpec::name)
      .def_ro("doc", &OutputSpec::doc)
      .def_ro("variadic", &OutputSpec::variadic);
  nb::class_<OpSchema>(m, "OpSchema", "What an op declares: inputs, attributes, outputs.")
      .def_ro("name", &OpSchema::name)
      .def_ro("doc", &OpSchema::doc)
      .def_ro("version", &OpSchema::version)
      .def_ro("role", &OpSchema::role)
      .def_ro("internal", &OpSchema::internal)
      .def_ro("inputs", &OpSchema::inputs)
      .def_ro("attributes", &OpSchema::attributes)
      .def_ro("outputs", &OpSchema::outputs)
      .def_ro("has_decomposition", &OpSchema::has_decomposition)
      .def(
          "attribute",
          [](const OpSchema& s, const std::string& name) {
            const AttrSpec* a = s.attribute(name);
            if (!a) fail(ErrorKind::value, s.name + " has no attribute '" + name + "'");
            return *a;
          },
          nb::arg("name"))
      .def("__str__", &OpSchema::str)
      .def("__repr__", [](const OpSchema& s) { return "<OpSchema " + s.name + ">"; });
  m.def(
      "op_schema", [](const std::string& name) { return op_schema(name); }, nb::arg("name"),
      "The schema of a registered op: its inputs, attributes (types, defaults), outputs.");
  m.def("op_names", &op_names, "Names of every registered op.");
}

}  // namespace

Attributes attributes_from_py(nb::handle dict) {
  if (dict.is_none()) return {};
  if (!PyDict_Check(dict.ptr())) fail(ErrorKind::value, "attrs must be a dict");
  return attributes_from_dict(dict, "attribute");
}

std::vector<Tensor> add_node_from_py(const Graph* graph, const std::string& op, nb::handle inputs,
                                     nb::handle attrs) {
  return add_node_py(op, inputs, attrs, graph);
}

void bind_ops(nb::module_& m) {
  bind_schema(m);
  // ---- elementwise --------------------------------------------------------------------
  def_binary<add>(
      m, "add",
      schema_doc("add", "a or b may be a Python number (a constant of the other\'s dtype)."));
  def_binary<sub>(
      m, "sub",
      schema_doc("sub", "a or b may be a Python number (a constant of the other\'s dtype)."));
  def_binary<mul>(
      m, "mul",
      schema_doc("mul", "a or b may be a Python number (a constant of the other\'s dtype)."));
  def_binary<div>(
      m, "div",
      schema_doc("div", "a or b may be a Python number (a constant of the other\'s dtype)."));
  def_binary<loom::pow>(
      m, "pow",
      schema_doc("pow", "a or b may be a Python number (a constant of the other\'s dtype)."));
  def_binary<maximum>(
      m, "maximum",
      schema_doc("maximum", "a or b may be a Python number (a constant of the other\'s dtype)."));
  def_binary<minimum>(
      m, "minimum",
      schema_doc("minimum", "a or b may be a Python number (a constant of the other\'s dtype)."));
  def_binary<equal>(
      m, "equal",
      schema_doc("equal", "a or b may be a Python number (a constant of the other\'s dtype)."));
  def_binary<less>(
      m, "less",
      schema_doc("less", "a or b may be a Python number (a constant of the other\'s dtype)."));
  def_binary<greater>(
      m, "greater",
      schema_doc("greater", "a or b may be a Python number (a constant of the other\'s dtype)."));
  m.def(
      "where",
      [](const Tensor& condition, OperandArg a, OperandArg b) {
        std::vector<Tensor> ab = operands("where", {&a, &b});
        return where(condition, ab[0], ab[1]);
      },
      nb::arg("condition"), nb::arg("a"), nb::arg("b"),
      schema_doc("where", "a or b may be a Python number (a constant of the other's dtype)."));

  def_unary<neg>(m, "neg", schema_doc("neg"));
  def_unary<loom::abs>(m, "abs", schema_doc("abs"));
  def_unary<loom::exp>(m, "exp", schema_doc("exp"));
  def_unary<loom::log>(m, "log", schema_doc("log"));
  def_unary<loom::sqrt>(m, "sqrt", schema_doc("sqrt"));
  def_unary<rsqrt>(m, "rsqrt", schema_doc("rsqrt"));
  def_unary<loom::sin>(m, "sin", schema_doc("sin"));
  def_unary<loom::cos>(m, "cos", schema_doc("cos"));
  def_unary<loom::tanh>(m, "tanh", schema_doc("tanh"));
  def_unary<sigmoid>(m, "sigmoid", schema_doc("sigmoid"));
  def_unary<silu>(m, "silu", schema_doc("silu"));
  def_unary<relu>(m, "relu", schema_doc("relu"));
  m.def(
      "gelu",
      [](const Tensor& x, const std::string& approximate) {
        if (approximate == "none") return gelu(x, GeluApproximation::none);
        if (approximate == "tanh") return gelu(x, GeluApproximation::tanh);
        fail(ErrorKind::value,
             "gelu: approximate must be 'none' or 'tanh', not '" + approximate + "'");
      },
      nb::arg("x"), nb::arg("approximate") = "none",
      schema_doc("gelu", "approximate='tanh' (as torch's) builds op gelu_tanh instead."));
  m.def(
      "cast", [](const Tensor& x, DTypeArg dtype) { return cast(x, dtype.get()); }, nb::arg("x"),
      nb::arg("dtype"), schema_doc("cast"));

  // ---- matmul -------------------------------------------------------------------------
  m.def("matmul", &matmul, nb::arg("a"), nb::arg("b"), nb::arg("transpose_a") = false,
        nb::arg("transpose_b") = false, schema_doc("matmul"));

  // ---- reductions ---------------------------------------------------------------------
  const std::string reduce_note = "axes: None (every axis), one int or a list of ints.";
  m.def(
      "sum",
      [](const Tensor& x, AxesArg axes, bool keepdims) { return sum(x, axes.get(), keepdims); },
      nb::arg("x"), nb::arg("axes") = nb::none(), nb::arg("keepdims") = false,
      schema_doc("sum", reduce_note));
  m.def(
      "mean",
      [](const Tensor& x, AxesArg axes, bool keepdims) { return mean(x, axes.get(), keepdims); },
      nb::arg("x"), nb::arg("axes") = nb::none(), nb::arg("keepdims") = false,
      schema_doc("mean", reduce_note));
  m.def(
      "max",
      [](const Tensor& x, AxesArg axes, bool keepdims) {
        return loom::max(x, axes.get(), keepdims);
      },
      nb::arg("x"), nb::arg("axes") = nb::none(), nb::arg("keepdims") = false,
      schema_doc("max", reduce_note));
  m.def(
      "min",
      [](const Tensor& x, AxesArg axes, bool keepdims) {
        return loom::min(x, axes.get(), keepdims);
      },
      nb::arg("x"), nb::arg("axes") = nb::none(), nb::arg("keepdims") = false,
      schema_doc("min", reduce_note));
  m.def("argmax", &argmax, nb::arg("x"), nb::arg("axis") = op_defaults::argmax_axis,
        nb::arg("keepdims") = false, schema_doc("argmax"));

  // ---- normalisation ------------------------------------------------------------------
  m.def("softmax", &softmax, nb::arg("x"), nb::arg("axis") = op_defaults::softmax_axis,
        schema_doc("softmax"));
  m.def("log_softmax", &log_softmax, nb::arg("x"), nb::arg("axis") = op_defaults::softmax_axis,
        schema_doc("log_softmax"));
  m.def("layer_norm", &layer_norm, nb::arg("x"), nb::arg("weight") = nb::none(),
        nb::arg("bias") = nb::none(), nb::arg("eps") = op_defaults::layer_norm_eps,
        schema_doc("layer_norm"));
  m.def("rms_norm", &rms_norm, nb::arg("x"), nb::arg("weight") = nb::none(),
        nb::arg("eps") = op_defaults::rms_norm_eps, schema_doc("rms_norm"));

  // ---- shape and data movement --------------------------------------------------------
  m.def(
      "reshape", [](const Tensor& x, ShapeArg shape) { return reshape(x, shape.get()); },
      nb::arg("x"), nb::arg("shape"), schema_doc("reshape"));
  m.def(
      "transpose",
      [](const Tensor& x, std::optional<std::vector<int64_t>> perm) {
        return perm ? transpose(x, *perm) : transpose(x);
      },
      nb::arg("x"), nb::arg("perm") = nb::none(),
      schema_doc("transpose", "With no perm, swaps the last two axes."));
  m.def(
      "permute", [](const Tensor& x, std::vector<int64_t> perm) { return permute(x, perm); },
      nb::arg("x"), nb::arg("perm"), schema_doc("transpose", "The same as transpose(x, perm)."));
  m.def(
      "broadcast_to", [](const Tensor& x, ShapeArg shape) { return broadcast_to(x, shape.get()); },
      nb::arg("x"), nb::arg("shape"), schema_doc("broadcast_to"));
  m.def("concat", &concat, nb::arg("xs"), nb::arg("axis") = 0, schema_doc("concat"));
  m.def(
      "split",
      [](const Tensor& x, nb::handle sizes_or_parts, int64_t axis) {
        if (PyLong_Check(sizes_or_parts.ptr())) {
          return split(x, nb::cast<int64_t>(sizes_or_parts), axis);
        }
        return split(x, axes_from_py(sizes_or_parts), axis);
      },
      nb::arg("x"), nb::arg("sizes_or_parts"), nb::arg("axis") = 0,
      schema_doc("split", "sizes_or_parts: a list of sizes, or an int number of equal parts."));
  m.def(
      "slice",
      [](const Tensor& x, std::vector<int64_t> axes, std::vector<int64_t> starts,
         std::vector<int64_t> stops, std::optional<std::vector<int64_t>> steps) {
        return slice(x, axes, starts, stops, steps.value_or(std::vector<int64_t>{}));
      },
      nb::arg("x"), nb::arg("axes"), nb::arg("starts"), nb::arg("stops"),
      nb::arg("steps") = nb::none(), schema_doc("slice"));
  auto dynamic_slice = [](const Tensor& x, const Tensor& starts, std::vector<int64_t> axes,
                          std::vector<int64_t> sizes) { return slice(x, starts, axes, sizes); };
  const char* dynamic_slice_doc = schema_doc("dynamic_slice", "slice(x, starts, axes, sizes).");
  m.def("slice", dynamic_slice, nb::arg("x"), nb::arg("starts"), nb::arg("axes"), nb::arg("sizes"),
        dynamic_slice_doc);
  m.def("dynamic_slice", dynamic_slice, nb::arg("x"), nb::arg("starts"), nb::arg("axes"),
        nb::arg("sizes"), dynamic_slice_doc);
  m.def(
      "slice_update",
      [](const Tensor& x, const Tensor& update, StartsArg starts) {
        if (nb::isinstance<Tensor>(starts.obj)) {
          return slice_update(x, update, nb::cast<Tensor>(starts.obj));
        }
        return slice_update(x, update, axes_from_py(starts.obj));
      },
      nb::arg("x"), nb::arg("update"), nb::arg("starts"),
      schema_doc("slice_update", "starts: a list, or an int tensor read at run time."));
  m.def("gather", &gather, nb::arg("table"), nb::arg("indices"),
        nb::arg("axis") = op_defaults::gather_axis, schema_doc("gather"));
  m.def(
      "arange",
      [](Graph& g, double start, double stop, double step, DTypeArg dtype) {
        return arange(g, start, stop, step, dtype.get());
      },
      nb::arg("graph"), nb::arg("start"), nb::arg("stop"),
      nb::arg("step") = op_defaults::arange_step, nb::arg("dtype") = op_defaults::arange_dtype,
      schema_doc("arange"));
  m.def(
      "rope",
      [](const Tensor& x, const Tensor& offset, double base, bool interleaved, int64_t dims,
         double scale) {
        return rope(x, offset, RopeOptions{base, interleaved, dims, scale});
      },
      nb::arg("x"), nb::arg("offset"), nb::arg("base") = op_defaults::rope_base,
      nb::arg("interleaved") = op_defaults::rope_interleaved,
      nb::arg("dims") = op_defaults::rope_dims, nb::arg("scale") = op_defaults::rope_scale,
      schema_doc("rope"));

  m.def(
      "add_node",
      [](const std::string& op, nb::handle inputs, nb::handle attrs) {
        return add_node_py(op, inputs, attrs, nullptr);
      },
      nb::arg("op"), nb::arg("inputs"), nb::arg("attrs") = nb::none(),
      "Adds a node of any registered op to the inputs' graph; returns its outputs. inputs: a\n"
      "list in declared order (None for an absent optional input) or a dict by name; attrs: a\n"
      "dict checked against loom.op_schema(op), whose defaults fill the rest.");
}

}  // namespace loom::python
