// loom::Error becomes a Python exception whose class follows the error's category. Each
// class derives from loom.Error and from the builtin that a Python user would catch
// (a shape error is a ValueError, a device error a RuntimeError).
#include <array>

#include "bindings.h"
#include "loom/error.h"

namespace loom::python {
namespace {

struct ErrorClass {
  ErrorKind kind;
  const char* name;
  PyObject* builtin_base;
  const char* doc;
};

// One row per ErrorKind; the classes are made once, when the module loads.
std::array<PyObject*, 7> g_error_classes{};
PyObject* g_base_error = nullptr;

PyObject* class_for(ErrorKind kind) {
  PyObject* cls = g_error_classes.at(size_t(kind));
  return cls ? cls : g_base_error;
}

}  // namespace

void bind_errors(nb::module_& m) {
  const ErrorClass classes[] = {
      {ErrorKind::shape, "ShapeError", PyExc_ValueError, "Shapes that do not fit an op."},
      {ErrorKind::dtype, "DTypeError", PyExc_TypeError, "A dtype an op or a feed does not take."},
      {ErrorKind::value, "InvalidValueError", PyExc_ValueError,
       "A bad argument value (unknown name, zero step, ...)."},
      {ErrorKind::io, "IOError", PyExc_OSError, "A file that cannot be read or written."},
      {ErrorKind::device, "DeviceError", PyExc_RuntimeError,
       "A device that is missing or failed (CUDA errors)."},
      {ErrorKind::unsupported, "UnsupportedError", PyExc_NotImplementedError,
       "Something Loom does not do (yet)."},
      {ErrorKind::internal, "InternalError", PyExc_RuntimeError, "A bug in Loom."},
  };

  g_base_error = PyErr_NewExceptionWithDoc("loom.Error", "Base class of every Loom error.",
                                           PyExc_Exception, nullptr);
  if (!g_base_error) throw nb::python_error();
  m.attr("Error") = nb::handle(g_base_error);
  for (const ErrorClass& row : classes) {
    nb::object bases = nb::make_tuple(nb::handle(g_base_error), nb::handle(row.builtin_base));
    std::string qualified = std::string("loom.") + row.name;
    PyObject* cls = PyErr_NewExceptionWithDoc(qualified.c_str(), row.doc, bases.ptr(), nullptr);
    if (!cls) throw nb::python_error();
    g_error_classes.at(size_t(row.kind)) = cls;
    m.attr(row.name) = nb::handle(cls);
  }

  nb::register_exception_translator([](const std::exception_ptr& p, void*) {
    try {
      std::rethrow_exception(p);
    } catch (const loom::Error& e) {
      PyErr_SetString(class_for(e.kind()), e.what());
    }
  });
}

}  // namespace loom::python
