// loom.Graph and loom.Tensor: building a computation from Python, with operators and
// NumPy-style indexing on tensors.
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <climits>

#include "arg_types.h"
#include "bindings.h"
#include "loom/error.h"
#include "loom/ops.h"

namespace loom::python {

Attributes attributes_from_py(nb::handle dict);
Tensor scalar_like(const Tensor& like, double value);
// ops.cpp: inputs as a list or a dict by name, attrs as a dict.
std::vector<Tensor> add_node_from_py(const Graph* graph, const std::string& op, nb::handle inputs,
                                     nb::handle attrs);

namespace {

std::string repr_of(const Tensor& t) {
  return "Tensor(" + t.op() + ", " + dtype_name(t.dtype()) + to_string(t.shape()) + ")";
}

[[noreturn]] void index_error(const std::string& message) {
  throw nb::index_error(message.c_str());
}

// One entry of an index expression, classified.
struct IndexItem {
  enum Kind { integer, range, new_axis, ellipsis } kind;
  int64_t start = 0, stop = 0, step = 1;
  bool full = false;  // ':' keeps the axis whole
};

IndexItem classify(nb::handle item) {
  if (item.is_none()) return {IndexItem::new_axis};
  if (item.ptr() == Py_Ellipsis) return {IndexItem::ellipsis};
  if (PySlice_Check(item.ptr())) {
    Py_ssize_t start, stop, step;
    if (PySlice_Unpack(item.ptr(), &start, &stop, &step) != 0) throw nb::python_error();
    PySliceObject* s = reinterpret_cast<PySliceObject*>(item.ptr());
    bool full = s->start == Py_None && s->stop == Py_None && (s->step == Py_None || step == 1);
    return {IndexItem::range, int64_t(start), int64_t(stop), int64_t(step), full};
  }
  if (!PyBool_Check(item.ptr()) && PyIndex_Check(item.ptr())) {
    Py_ssize_t i = PyNumber_AsSsize_t(item.ptr(), PyExc_IndexError);
    if (i == -1 && PyErr_Occurred()) throw nb::python_error();
    return {IndexItem::integer, int64_t(i)};
  }
  std::string shown = nb::cast<std::string>(nb::repr(item));
  index_error("Tensor index " + shown +
              " is not supported: use ints, slices with constant bounds, None or ...; "
              "loom.gather or loom.slice(x, starts_tensor, ...) for run-time positions");
}

// x[...] with ints, static slices, None and Ellipsis: one "slice" node for the ranges
// and ints, then one "reshape" that drops the int axes and adds the None axes.
Tensor getitem(const Tensor& x, nb::handle key) {
  if (nb::isinstance<Tensor>(key)) return gather(x, nb::cast<Tensor>(key), 0);
  std::vector<IndexItem> items;
  if (PyTuple_Check(key.ptr())) {
    for (nb::handle item : nb::borrow<nb::tuple>(key)) items.push_back(classify(item));
  } else {
    items.push_back(classify(key));
  }
  int rank = x.rank();
  int consuming = 0, ellipses = 0;
  for (const IndexItem& item : items) {
    consuming += item.kind == IndexItem::integer || item.kind == IndexItem::range;
    ellipses += item.kind == IndexItem::ellipsis;
  }
  if (ellipses > 1) index_error("an index can only have a single ellipsis ('...')");
  if (consuming > rank) {
    index_error("too many indices for a tensor of rank " + std::to_string(rank) + ": " +
                std::to_string(consuming) + " were given");
  }
  // Expand the ellipsis (or pad at the end) with full ranges.
  std::vector<IndexItem> expanded;
  for (const IndexItem& item : items) {
    if (item.kind == IndexItem::ellipsis) {
      for (int i = 0; i < rank - consuming; ++i) {
        expanded.push_back({IndexItem::range, 0, LLONG_MAX, 1, true});
      }
    } else {
      expanded.push_back(item);
    }
  }
  if (ellipses == 0) {
    for (int i = consuming; i < rank; ++i)
      expanded.push_back({IndexItem::range, 0, LLONG_MAX, 1, true});
  }

  std::vector<int64_t> axes, starts, stops, steps;
  bool reshaped = false;
  int axis = 0;
  for (const IndexItem& item : expanded) {
    if (item.kind == IndexItem::new_axis) {
      reshaped = true;
      continue;
    }
    const Dim& dim = x.shape()[size_t(axis)];
    if (item.kind == IndexItem::integer) {
      int64_t i = item.start;
      if (dim.is_static() && (i >= dim.value() || i < -dim.value())) {
        index_error("index " + std::to_string(i) + " is out of range for axis " +
                    std::to_string(axis) + " of size " + std::to_string(dim.value()));
      }
      axes.push_back(axis);
      starts.push_back(i);
      stops.push_back(i == -1 ? LLONG_MAX : i + 1);
      steps.push_back(1);
      reshaped = true;
    } else if (!item.full) {
      axes.push_back(axis);
      starts.push_back(item.start);
      stops.push_back(item.stop);
      steps.push_back(item.step);
    }
    ++axis;
  }
  Tensor y = axes.empty() ? x : slice(x, axes, starts, stops, steps);
  if (!reshaped) return y;

  // The result's dims: kept axes as they are, ints dropped, None as 1. A dim the slice
  // could not express (unknown until run time) becomes -1, which reshape infers.
  Shape shape;
  int unknown = 0;
  axis = 0;
  for (const IndexItem& item : expanded) {
    if (item.kind == IndexItem::new_axis) {
      shape.emplace_back(int64_t(1));
      continue;
    }
    const Dim& dim = y.shape()[size_t(axis++)];
    if (item.kind == IndexItem::integer) continue;
    if (dim == Dim::unknown()) {
      ++unknown;
      shape.emplace_back(int64_t(-1));
    } else {
      shape.push_back(dim);
    }
  }
  if (unknown > 1) {
    fail(ErrorKind::unsupported,
         "indexing with ints or None needs all but one of the remaining dims known at build time");
  }
  return reshape(y, shape);
}

// Operators return NotImplemented for operands they do not know, as Python expects.
template <class Fn>
nb::object operator_or_not_implemented(const Tensor& a, nb::handle b, const char* name, Fn fn) {
  if (operand_kind(b) == OperandKind::other) return nb::borrow(Py_NotImplemented);
  return nb::cast(fn(a, operand_like(a, b, name)));
}

template <class Fn>
void def_operator(nb::class_<Tensor>& cls, const char* name, const char* reflected, Fn fn) {
  // .none(): `t == None` must reach the operator (and get NotImplemented), not fail to bind.
  cls.def(
      name,
      [name, fn](const Tensor& a, nb::handle b) {
        return operator_or_not_implemented(a, b, name, fn);
      },
      nb::arg("other").none());
  if (reflected) {
    cls.def(
        reflected,
        [reflected, fn](const Tensor& a, nb::handle b) {
          return operator_or_not_implemented(
              a, b, reflected, [fn](const Tensor& x, const Tensor& y) { return fn(y, x); });
        },
        nb::arg("other").none());
  }
}

// a != b as a graph op: there is no not_equal op, and where(equal, false, true) is also
// true for NaN != NaN, as IEEE (and NumPy) have it.
Tensor not_equal(const Tensor& a, const Tensor& b) {
  Graph g = graph_of(a);
  return where(equal(a, b), g.constant(0.0, DType::boolean), g.constant(1.0, DType::boolean));
}

}  // namespace

void bind_graph(nb::module_& m) {
  auto tensor = nb::class_<Tensor>(
      m, "Tensor",
      "A handle to one value of a graph (like MPSGraphTensor): it knows its graph, shape and\n"
      "dtype. Made by Graph methods and loom op functions, never directly.");
  tensor
      .def_prop_ro(
          "shape", [](const Tensor& t) { return shape_to_py(t.shape()); },
          "Dims as ints, or names for symbolic dims bound at run time ('?' when unknown).")
      .def_prop_ro("dtype", &Tensor::dtype)
      .def_prop_ro("ndim", &Tensor::rank)
      .def_prop_ro("op", &Tensor::op, "The op that made it, e.g. 'add'.")
      .def_prop_ro(
          "graph", [](const Tensor& t) { return Graph(t.program()); }, "The graph it belongs to.")
      .def("__repr__", &repr_of)
      .def("__neg__", [](const Tensor& x) { return neg(x); })
      .def("__abs__", [](const Tensor& x) { return loom::abs(x); })
      .def("__getitem__", &getitem, nb::arg("key"),
           "Static indexing: ints, slices with constant bounds, None and ...; a Tensor\n"
           "index gathers along axis 0.")
      .def("__iter__",
           [](const Tensor&) -> nb::object {
             throw nb::type_error("a loom.Tensor is not iterable (it has no values until run)");
           })
      .def("__bool__",
           [](const Tensor&) -> bool {
             throw nb::type_error(
                 "a loom.Tensor has no truth value at build time (use loom.where for choices)");
           })
      .def(
          "reshape", [](const Tensor& x, ShapeArg shape) { return reshape(x, shape.get()); },
          nb::arg("shape"))
      .def(
          "transpose",
          [](const Tensor& x, std::optional<std::vector<int64_t>> perm) {
            return perm ? transpose(x, *perm) : transpose(x);
          },
          nb::arg("perm") = nb::none(), "Permutes the axes; with no perm, swaps the last two.")
      .def_prop_ro(
          "T", [](const Tensor& x) { return transpose(x); }, "The last two axes swapped.")
      .def(
          "astype", [](const Tensor& x, DTypeArg dtype) { return cast(x, dtype.get()); },
          nb::arg("dtype"))
      .def(
          "sum",
          [](const Tensor& x, AxesArg axes, bool keepdims) { return sum(x, axes.get(), keepdims); },
          nb::arg("axes") = nb::none(), nb::arg("keepdims") = false)
      .def(
          "mean",
          [](const Tensor& x, AxesArg axes, bool keepdims) {
            return mean(x, axes.get(), keepdims);
          },
          nb::arg("axes") = nb::none(), nb::arg("keepdims") = false);

  def_operator(tensor, "__add__", "__radd__",
               [](const Tensor& a, const Tensor& b) { return a + b; });
  def_operator(tensor, "__sub__", "__rsub__",
               [](const Tensor& a, const Tensor& b) { return a - b; });
  def_operator(tensor, "__mul__", "__rmul__",
               [](const Tensor& a, const Tensor& b) { return a * b; });
  def_operator(tensor, "__truediv__", "__rtruediv__",
               [](const Tensor& a, const Tensor& b) { return a / b; });
  def_operator(tensor, "__pow__", "__rpow__",
               [](const Tensor& a, const Tensor& b) { return loom::pow(a, b); });
  def_operator(tensor, "__matmul__", "__rmatmul__",
               [](const Tensor& a, const Tensor& b) { return matmul(a, b); });
  def_operator(tensor, "__lt__", nullptr,
               [](const Tensor& a, const Tensor& b) { return less(a, b); });
  def_operator(tensor, "__gt__", nullptr,
               [](const Tensor& a, const Tensor& b) { return greater(a, b); });
  // == and != build graph ops (as torch's and NumPy's do), so a Tensor has no truth value
  // to compare by. Hashing stays by identity, as before, so Tensors still work as dict keys
  // and set members: lookups compare identity first, and distinct live Tensors never share
  // a hash, so __eq__ is not called on them.
  def_operator(tensor, "__eq__", nullptr,
               [](const Tensor& a, const Tensor& b) { return equal(a, b); });
  def_operator(tensor, "__ne__", nullptr,
               [](const Tensor& a, const Tensor& b) { return not_equal(a, b); });
  tensor.attr("__hash__") = nb::module_::import_("builtins").attr("object").attr("__hash__");
  // NumPy defers to Tensor's (reflected) operators instead of applying the ufunc to every
  // element: `array + tensor` is Tensor.__radd__, a graph op with the array as a constant.
  tensor.attr("__array_ufunc__") = nb::none();

  nb::class_<Graph>(m, "Graph",
                    "Owns the nodes of a computation. Graph-level things are methods\n"
                    "(placeholder, constant, variable, read, assign); ops are loom functions.")
      .def(nb::init<>())
      .def(
          "placeholder",
          [](Graph& g, const std::string& name, ShapeArg shape, DTypeArg dtype) {
            Shape dims = shape.get();
            for (const Dim& dim : dims) {
              if (dim.is_static() && dim.value() < 0) {
                fail(ErrorKind::shape,
                     "placeholder '" + name + "': dims must be >= 0, got " + to_string(dims));
              }
            }
            return g.placeholder(name, std::move(dims), dtype.get());
          },
          nb::arg("name"), nb::arg("shape"), nb::arg("dtype") = DType::f32,
          "A value fed at run time under `name`; dims are ints or symbol names ('seq')\n"
          "bound by the feed.")
      .def(
          "constant",
          [](Graph& g, nb::handle value, nb::handle dtype) {
            std::optional<DType> want;
            if (!dtype.is_none()) want = dtype_from_py(dtype);
            bool is_number = PyFloat_Check(value.ptr()) || PyLong_Check(value.ptr());
            if (is_number) return g.constant(nb::cast<double>(value), want.value_or(DType::f32));
            // An array converts to the asked dtype through NumPy; the graph keeps its own
            // copy so that later writes to the array do not change the graph.
            nb::object source = nb::borrow(value);
            if (want && !nb::isinstance<TensorData>(value)) {
              source =
                  numpy_module().attr("asarray")(value, nb::arg("dtype") = numpy_dtype_of(*want));
            }
            return g.constant(tensor_data_from_py(source, want, "constant").clone());
          },
          nb::arg("value").none(), nb::arg("dtype") = nb::none(),
          "A constant from a number (float32 unless `dtype`) or an array (copied).")
      .def(
          "variable",
          [](Graph& g, const std::string& name, nb::handle initial, nb::handle dtype,
             nb::handle shape) {
            std::optional<DType> want;
            if (!dtype.is_none()) want = dtype_from_py(dtype);
            if (initial.is_none()) {
              // No value: a VariableStore supplies it (adopt, declare) before the first run.
              if (shape.is_none())
                fail(ErrorKind::value, "variable '" + name +
                                           "': give an initial value, or shape= (and dtype=) "
                                           "for a value the store supplies");
              Extents dims;
              for (nb::handle d : nb::borrow<nb::sequence>(shape))
                dims.push_back(nb::cast<int64_t>(d));
              return g.variable(name, std::move(dims), want.value_or(DType::f32));
            }
            if (!shape.is_none())
              fail(ErrorKind::value, "variable '" + name + "': give initial or shape, not both");
            nb::object source = nb::borrow(initial);
            if (want && !nb::isinstance<TensorData>(initial)) {
              source =
                  numpy_module().attr("asarray")(initial, nb::arg("dtype") = numpy_dtype_of(*want));
            }
            TensorData data = tensor_data_from_py(source, want, "variable '" + name + "'");
            return g.variable(name, data.clone());
          },
          nb::arg("name"), nb::arg("initial").none() = nb::none(), nb::arg("dtype") = nb::none(),
          nb::arg("shape") = nb::none(),
          "A named persistent tensor (weights, KV caches) with its initial value (copied once;\n"
          "the graph and a CPU store share that copy), or, with shape= and dtype= and no\n"
          "initial value, one that a VariableStore supplies (VariableStore.adopt or declare)\n"
          "before the first run. The result reads the variable's current value.")
      .def("read", &Graph::read, nb::arg("variable"), "Reads a variable's current value.")
      .def("assign", &Graph::assign, nb::arg("variable"), nb::arg("value"),
           "Stores `value` into the variable at the end of each run.")
      .def(
          "add_node",
          [](Graph& g, const std::string& op, nb::handle inputs, nb::handle attrs) {
            return add_node_from_py(&g, op, inputs, attrs);
          },
          nb::arg("op"), nb::arg("inputs") = nb::list(), nb::arg("attrs") = nb::none(),
          "Adds a node of any registered op (see loom.op_names() and loom.op_schema(op));\n"
          "returns its outputs. inputs: a list in declared order (None for an absent optional\n"
          "input) or a dict by name; attrs: a dict, checked against the schema.")
      .def(
          "arange",
          [](Graph& g, double start, double stop, double step, DTypeArg dtype) {
            return arange(g, start, stop, step, dtype.get());
          },
          nb::arg("start"), nb::arg("stop"), nb::arg("step") = op_defaults::arange_step,
          nb::arg("dtype") = op_defaults::arange_dtype)
      .def("dump", &Graph::dump, "The graph as text, one node a line.")
      .def("__repr__", &Graph::dump);
}

}  // namespace loom::python
