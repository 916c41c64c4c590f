// Every op function of include/loom/ops.h as loom.<name>. Binary ops also take a Python
// number or a NumPy array for one operand (a constant of the other operand's dtype).
#include "loom/ops.h"

#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include "arg_types.h"
#include "bindings.h"
#include "ir/op_registry.h"
#include "loom/error.h"

namespace loom::python {
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

AttrValue attr_from_py(const std::string& key, nb::handle value) {
  if (PyBool_Check(value.ptr())) return nb::cast<bool>(value);
  if (PyLong_Check(value.ptr())) return nb::cast<int64_t>(value);
  if (PyFloat_Check(value.ptr())) return nb::cast<double>(value);
  if (PyUnicode_Check(value.ptr())) return nb::cast<std::string>(value);
  if (nb::isinstance<DType>(value)) return nb::cast<DType>(value);
  if (PyList_Check(value.ptr()) || PyTuple_Check(value.ptr())) {
    bool any_symbol = false;
    for (nb::handle item : nb::borrow<nb::sequence>(value)) {
      any_symbol |= PyUnicode_Check(item.ptr()) != 0;
    }
    // A list with symbol names is a Shape; a list of ints stays a list of ints.
    if (any_symbol) return shape_from_py(value);
    return axes_from_py(value);
  }
  try {
    return tensor_data_from_py(value, std::nullopt, "attribute '" + key + "'").clone();
  } catch (loom::Error&) {
    fail(ErrorKind::value, "attribute '" + key + "' = " + repr_of(value) +
                               " is not an int, float, bool, str, dtype, list or array");
  }
}

}  // namespace

Attributes attributes_from_py(nb::handle dict) {
  Attributes attrs;
  if (dict.is_none()) return attrs;
  if (!PyDict_Check(dict.ptr())) fail(ErrorKind::value, "attrs must be a dict");
  for (auto [key, value] : nb::borrow<nb::dict>(dict)) {
    if (!PyUnicode_Check(key.ptr())) fail(ErrorKind::value, "attribute names must be str");
    std::string name = nb::cast<std::string>(key);
    attrs.set(name, attr_from_py(name, value));
  }
  return attrs;
}

void bind_ops(nb::module_& m) {
  // ---- elementwise --------------------------------------------------------------------
  def_binary<add>(m, "add", "a + b with NumPy broadcasting.");
  def_binary<sub>(m, "sub", "a - b with NumPy broadcasting.");
  def_binary<mul>(m, "mul", "a * b with NumPy broadcasting.");
  def_binary<div>(m, "div", "a / b with NumPy broadcasting (integers truncate toward zero).");
  def_binary<loom::pow>(m, "pow", "a ** b with NumPy broadcasting.");
  def_binary<maximum>(m, "maximum", "Elementwise maximum.");
  def_binary<minimum>(m, "minimum", "Elementwise minimum.");
  def_binary<equal>(m, "equal", "a == b, as bool.");
  def_binary<less>(m, "less", "a < b, as bool.");
  def_binary<greater>(m, "greater", "a > b, as bool.");
  m.def(
      "where",
      [](const Tensor& condition, OperandArg a, OperandArg b) {
        std::vector<Tensor> ab = operands("where", {&a, &b});
        return where(condition, ab[0], ab[1]);
      },
      nb::arg("condition"), nb::arg("a"), nb::arg("b"),
      "a where condition (bool) is true, else b; the three broadcast.");

  def_unary<neg>(m, "neg", "-x");
  def_unary<loom::abs>(m, "abs", "|x|");
  def_unary<loom::exp>(m, "exp", "e ** x");
  def_unary<loom::log>(m, "log", "Natural logarithm.");
  def_unary<loom::sqrt>(m, "sqrt", "Square root.");
  def_unary<rsqrt>(m, "rsqrt", "1 / sqrt(x).");
  def_unary<loom::sin>(m, "sin", "Sine.");
  def_unary<loom::cos>(m, "cos", "Cosine.");
  def_unary<loom::tanh>(m, "tanh", "Hyperbolic tangent.");
  def_unary<sigmoid>(m, "sigmoid", "1 / (1 + exp(-x)).");
  def_unary<silu>(m, "silu", "x * sigmoid(x).");
  def_unary<relu>(m, "relu", "max(x, 0).");
  m.def(
      "gelu",
      [](const Tensor& x, const std::string& approximate) {
        if (approximate == "none") return gelu(x, GeluApproximation::none);
        if (approximate == "tanh") return gelu(x, GeluApproximation::tanh);
        fail(ErrorKind::value,
             "gelu: approximate must be 'none' or 'tanh', not '" + approximate + "'");
      },
      nb::arg("x"), nb::arg("approximate") = "none",
      "GELU: the exact (erf) form, or the tanh approximation (as torch's approximate=).");
  m.def(
      "cast", [](const Tensor& x, DTypeArg dtype) { return cast(x, dtype.get()); }, nb::arg("x"),
      nb::arg("dtype"), "x converted to dtype.");

  // ---- matmul -------------------------------------------------------------------------
  m.def("matmul", &matmul, nb::arg("a"), nb::arg("b"), nb::arg("transpose_a") = false,
        nb::arg("transpose_b") = false,
        "a [..., M, K] @ b [..., K, N] -> [..., M, N]; batch dims broadcast. transpose_a /\n"
        "transpose_b swap the last two dims of that operand first.");

  // ---- reductions ---------------------------------------------------------------------
  const char* reduce_doc = "Over `axes` (None: every axis); keepdims keeps them as size 1.";
  m.def(
      "sum",
      [](const Tensor& x, AxesArg axes, bool keepdims) { return sum(x, axes.get(), keepdims); },
      nb::arg("x"), nb::arg("axes") = nb::none(), nb::arg("keepdims") = false, reduce_doc);
  m.def(
      "mean",
      [](const Tensor& x, AxesArg axes, bool keepdims) { return mean(x, axes.get(), keepdims); },
      nb::arg("x"), nb::arg("axes") = nb::none(), nb::arg("keepdims") = false, reduce_doc);
  m.def(
      "max",
      [](const Tensor& x, AxesArg axes, bool keepdims) {
        return loom::max(x, axes.get(), keepdims);
      },
      nb::arg("x"), nb::arg("axes") = nb::none(), nb::arg("keepdims") = false, reduce_doc);
  m.def(
      "min",
      [](const Tensor& x, AxesArg axes, bool keepdims) {
        return loom::min(x, axes.get(), keepdims);
      },
      nb::arg("x"), nb::arg("axes") = nb::none(), nb::arg("keepdims") = false, reduce_doc);
  m.def("argmax", &argmax, nb::arg("x"), nb::arg("axis"), nb::arg("keepdims") = false,
        "Index (int64) of the first maximum along axis.");

  // ---- normalisation ------------------------------------------------------------------
  m.def("softmax", &softmax, nb::arg("x"), nb::arg("axis") = -1);
  m.def("log_softmax", &log_softmax, nb::arg("x"), nb::arg("axis") = -1);
  m.def("layer_norm", &layer_norm, nb::arg("x"), nb::arg("weight") = nb::none(),
        nb::arg("bias") = nb::none(), nb::arg("eps") = 1e-5,
        "Layer normalisation over the last axis, with optional weight and bias [D].");
  m.def("rms_norm", &rms_norm, nb::arg("x"), nb::arg("weight") = nb::none(), nb::arg("eps") = 1e-6,
        "RMS normalisation over the last axis, with optional weight [D].");

  // ---- shape and data movement --------------------------------------------------------
  m.def(
      "reshape", [](const Tensor& x, ShapeArg shape) { return reshape(x, shape.get()); },
      nb::arg("x"), nb::arg("shape"), "One dim may be -1; symbol names are allowed.");
  m.def(
      "transpose",
      [](const Tensor& x, std::optional<std::vector<int64_t>> perm) {
        return perm ? transpose(x, *perm) : transpose(x);
      },
      nb::arg("x"), nb::arg("perm") = nb::none(),
      "Permutes the axes by perm; with no perm, swaps the last two.");
  m.def(
      "permute", [](const Tensor& x, std::vector<int64_t> perm) { return permute(x, perm); },
      nb::arg("x"), nb::arg("perm"));
  m.def(
      "broadcast_to", [](const Tensor& x, ShapeArg shape) { return broadcast_to(x, shape.get()); },
      nb::arg("x"), nb::arg("shape"));
  m.def("concat", &concat, nb::arg("xs"), nb::arg("axis") = 0);
  m.def(
      "split",
      [](const Tensor& x, nb::handle sizes_or_parts, int64_t axis) {
        if (PyLong_Check(sizes_or_parts.ptr())) {
          return split(x, nb::cast<int64_t>(sizes_or_parts), axis);
        }
        return split(x, axes_from_py(sizes_or_parts), axis);
      },
      nb::arg("x"), nb::arg("sizes_or_parts"), nb::arg("axis") = 0,
      "Into pieces of the given sizes (a list), or into that many equal parts (an int).");
  m.def(
      "slice",
      [](const Tensor& x, std::vector<int64_t> axes, std::vector<int64_t> starts,
         std::vector<int64_t> stops, std::optional<std::vector<int64_t>> steps) {
        return slice(x, axes, starts, stops, steps.value_or(std::vector<int64_t>{}));
      },
      nb::arg("x"), nb::arg("axes"), nb::arg("starts"), nb::arg("stops"),
      nb::arg("steps") = nb::none(),
      "Static slice with Python semantics (negative and clamped bounds, steps > 0).");
  auto dynamic_slice = [](const Tensor& x, const Tensor& starts, std::vector<int64_t> axes,
                          std::vector<int64_t> sizes) { return slice(x, starts, axes, sizes); };
  const char* dynamic_slice_doc =
      "A window of `sizes` along `axes` starting at `starts`, an int tensor read at run\n"
      "time and clamped so that the window stays inside x.";
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
      "x with the window at `starts` (one per axis of x: a list, or an int tensor read at run\n"
      "time) replaced by update.");
  m.def("gather", &gather, nb::arg("table"), nb::arg("indices"), nb::arg("axis") = 0,
        "Rows of table picked by integer indices along axis; out-of-range indices give zeros.");
  m.def(
      "arange",
      [](Graph& g, double start, double stop, double step, DTypeArg dtype) {
        return arange(g, start, stop, step, dtype.get());
      },
      nb::arg("graph"), nb::arg("start"), nb::arg("stop"), nb::arg("step") = 1.0,
      nb::arg("dtype") = DType::i64, "start, start + step, ... below stop.");
  m.def(
      "rope",
      [](const Tensor& x, const Tensor& offset, double base, bool interleaved, int64_t dims,
         double scale) {
        return rope(x, offset, RopeOptions{base, interleaved, dims, scale});
      },
      nb::arg("x"), nb::arg("offset"), nb::arg("base") = 10000.0, nb::arg("interleaved") = false,
      nb::arg("dims") = 0, nb::arg("scale") = 1.0,
      "Rotary position embedding of x [..., S, D]; row s is at position (offset + s) * scale.\n"
      "interleaved pairs (2i, 2i+1), else (i, i + D/2); dims rotates only the first dims\n"
      "features (0: all).");

  m.def(
      "add_node",
      [](const std::string& op, const std::vector<Tensor>& inputs, nb::handle attrs) {
        if (inputs.empty())
          fail(ErrorKind::value, "add_node: use Graph.add_node for ops without inputs");
        return graph_of(inputs[0]).add_node(op, inputs, attributes_from_py(attrs));
      },
      nb::arg("op"), nb::arg("inputs"), nb::arg("attrs") = nb::none(),
      "Adds a node of any registered op to the inputs' graph; returns its outputs.");
  m.def(
      "op_names", [] { return ir::OpRegistry::instance().names(); },
      "Names of every registered op.");
}

}  // namespace loom::python
