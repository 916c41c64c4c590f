// Shapes and axes as Python users write them: sequences of ints and symbol names.
#include <nanobind/stl/string.h>

#include "bindings.h"
#include "loom/error.h"

namespace loom::python {
namespace {

std::string repr_of(nb::handle obj) { return nb::cast<std::string>(nb::repr(obj)); }

bool is_sequence(nb::handle obj) {
  return PySequence_Check(obj.ptr()) && !PyUnicode_Check(obj.ptr()) && !PyBytes_Check(obj.ptr());
}

int64_t int_from_py(nb::handle item, const char* what) {
  if (PyBool_Check(item.ptr()) || !PyIndex_Check(item.ptr())) {
    fail(ErrorKind::value, std::string(what) + " must be an int, not " + repr_of(item));
  }
  int overflow = 0;
  nb::object index = nb::steal(PyNumber_Index(item.ptr()));
  if (!index.is_valid()) throw nb::python_error();
  long long value = PyLong_AsLongLongAndOverflow(index.ptr(), &overflow);
  if (overflow) fail(ErrorKind::value, std::string(what) + " " + repr_of(item) + " is too large");
  return int64_t(value);
}

}  // namespace

Shape shape_from_py(nb::handle obj) {
  if (!is_sequence(obj)) {
    fail(ErrorKind::value, "a shape is a list of ints and symbol names, not " + repr_of(obj));
  }
  Shape shape;
  nb::sequence items = nb::borrow<nb::sequence>(obj);
  for (nb::handle item : items) {
    if (PyUnicode_Check(item.ptr())) {
      std::string symbol = nb::cast<std::string>(item);
      if (symbol.empty()) fail(ErrorKind::value, "a symbolic dim needs a name");
      shape.emplace_back(std::move(symbol));
    } else {
      shape.emplace_back(int_from_py(item, "a shape entry"));
    }
  }
  return shape;
}

nb::tuple shape_to_py(const Shape& shape) {
  nb::list dims;
  for (const Dim& dim : shape) {
    if (dim.is_static()) {
      dims.append(dim.value());
    } else {
      dims.append(dim.symbol());
    }
  }
  return nb::tuple(dims);
}

nb::tuple extents_to_py(const Extents& extents) {
  nb::list dims;
  for (int64_t extent : extents) dims.append(extent);
  return nb::tuple(dims);
}

std::vector<int64_t> axes_from_py(nb::handle obj) {
  if (obj.is_none()) return {};
  if (!is_sequence(obj)) return {int_from_py(obj, "an axis")};
  std::vector<int64_t> axes;
  nb::sequence items = nb::borrow<nb::sequence>(obj);
  for (nb::handle item : items) axes.push_back(int_from_py(item, "an axis"));
  return axes;
}

}  // namespace loom::python
