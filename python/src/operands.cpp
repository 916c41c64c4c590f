// Operands of Tensor operators and binary op functions that are not Tensors. Python and
// NumPy scalars become a constant of the other operand's dtype, as before; NumPy arrays
// become a constant of that dtype too, but only when the conversion keeps their kind
// (bool < integer < float < complex), so that a float array never truncates silently into
// an integer tensor. Tensor sets __array_ufunc__ = None, so `array + tensor` reaches
// Tensor.__radd__ here instead of NumPy looping over the array's elements.
#include <nanobind/stl/string.h>

#include "arg_types.h"
#include "bindings.h"
#include "loom/error.h"
#include "loom/graph.h"

namespace loom::python {

Tensor scalar_like(const Tensor& like, double value) {
  return graph_of(like).constant(value, like.dtype());
}

namespace {

std::string repr_of(nb::handle obj) { return nb::cast<std::string>(nb::repr(obj)); }

// bool < integer < float < complex; -1 for kinds an operand array cannot have.
int kind_rank(char numpy_kind) {
  switch (numpy_kind) {
    case 'b':
      return 0;
    case 'i':
    case 'u':
      return 1;
    case 'f':
      return 2;
    case 'c':
      return 3;
    default:
      return -1;
  }
}

int kind_rank(DType dtype) {
  const DTypeInfo& info = dtype_info(dtype);
  if (dtype == DType::boolean) return 0;
  if (info.is_integer) return 1;
  if (info.is_float) return 2;
  return info.is_complex ? 3 : -1;
}

Tensor array_like(const Tensor& like, nb::handle obj, const std::string& op) {
  nb::module_& np = numpy_module();
  nb::object array = np.attr("asarray")(obj);
  nb::object want = numpy_dtype_of(like.dtype());
  nb::object have = array.attr("dtype");
  if (!have.equal(want)) {
    char kind = nb::cast<std::string>(have.attr("kind")).c_str()[0];
    int from = kind_rank(kind), to = kind_rank(like.dtype());
    if (from < 0 || to < 0 || from > to) {
      fail(ErrorKind::dtype, op + ": a NumPy array of dtype " +
                                 nb::cast<std::string>(nb::str(have)) + " cannot become a " +
                                 dtype_name(like.dtype()) +
                                 " constant without losing its kind; convert the array "
                                 "(array.astype) or the tensor (loom.cast) first");
    }
    array = np.attr("asarray")(array, nb::arg("dtype") = want);
  }
  // The graph keeps its own copy, so later writes to the array do not change it.
  return graph_of(like).constant(tensor_data_from_py(array, like.dtype(), op + " operand").clone());
}

double number_of(nb::handle obj, const std::string& op) {
  try {
    return nb::cast<double>(obj);
  } catch (nb::cast_error&) {
    fail(ErrorKind::value, op + ": operand " + repr_of(obj) + " is not a number");
  }
}

}  // namespace

OperandKind operand_kind(nb::handle obj) {
  if (nb::isinstance<Tensor>(obj)) return OperandKind::tensor;
  if (PyFloat_Check(obj.ptr()) || PyLong_Check(obj.ptr())) return OperandKind::scalar;
  nb::module_& np = numpy_module();
  if (nb::isinstance(obj, np.attr("ndarray"))) return OperandKind::array;
  if (nb::isinstance(obj, np.attr("generic"))) {
    char kind = nb::cast<std::string>(obj.attr("dtype").attr("kind")).c_str()[0];
    // Real NumPy scalars act as Python numbers; others (complex) as 0-d arrays.
    return kind == 'b' || kind == 'i' || kind == 'u' || kind == 'f' ? OperandKind::scalar
                                                                    : OperandKind::array;
  }
  if (PyIndex_Check(obj.ptr()) || nb::hasattr(obj, "__float__")) return OperandKind::scalar;
  return OperandKind::other;
}

Tensor operand_like(const Tensor& like, nb::handle obj, const std::string& op) {
  switch (operand_kind(obj)) {
    case OperandKind::tensor:
      return nb::cast<Tensor>(obj);
    case OperandKind::scalar:
      return scalar_like(like, number_of(obj, op));
    case OperandKind::array:
      return array_like(like, obj, op);
    case OperandKind::other:
      break;
  }
  fail(ErrorKind::value,
       op + ": operand " + repr_of(obj) + " is not a Tensor, a number or a NumPy array");
}

}  // namespace loom::python
