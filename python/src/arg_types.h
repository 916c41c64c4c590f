// Argument types whose conversion happens inside the bound function, so that a bad value
// raises Loom's own error (naming what was wrong) instead of nanobind's generic TypeError,
// while the signature (and the .pyi stub) still shows what is accepted.
#pragma once

#include <nanobind/nanobind.h>

#include <string>

#include "bindings.h"
#include "loom/graph.h"

namespace loom::python {

struct DTypeArg {
  nb::object obj;
  DType get() const { return dtype_from_py(obj); }
};

struct ShapeArg {
  nb::object obj;
  Shape get() const { return shape_from_py(obj); }
};

struct AxesArg {
  nb::object obj;
  std::vector<int64_t> get() const { return axes_from_py(obj); }
};

// An op operand: a Tensor, or a Python or NumPy scalar or a NumPy array that becomes a
// constant of the other operand's dtype (operands.cpp).
struct OperandArg {
  nb::object obj;
};

enum class OperandKind { tensor, scalar, array, other };
OperandKind operand_kind(nb::handle obj);
// `obj` as a Tensor in `like`'s graph; `op` names the operation in error messages.
Tensor operand_like(const Tensor& like, nb::handle obj, const std::string& op);
Tensor scalar_like(const Tensor& like, double value);

// Arguments checked in the function body, typed here for the stubs only.
struct FeedsArg {
  nb::object obj;
};
struct OutputsArg {
  nb::object obj;
};
struct StartsArg {
  nb::object obj;
};

}  // namespace loom::python

namespace nanobind::detail {

#define LOOM_PASSTHROUGH_CASTER(Type, Annotation)                              \
  template <>                                                                  \
  struct type_caster<Type> {                                                   \
    NB_TYPE_CASTER(Type, const_name(Annotation))                               \
    bool from_python(handle src, uint8_t, cleanup_list*) noexcept {            \
      value.obj = borrow(src);                                                 \
      return true;                                                             \
    }                                                                          \
    static handle from_cpp(const Type& v, rv_policy, cleanup_list*) noexcept { \
      return v.obj.inc_ref();                                                  \
    }                                                                          \
  };

LOOM_PASSTHROUGH_CASTER(loom::python::DTypeArg, "DType | str")
LOOM_PASSTHROUGH_CASTER(loom::python::ShapeArg, "collections.abc.Sequence[int | str]")
LOOM_PASSTHROUGH_CASTER(loom::python::AxesArg, "int | collections.abc.Sequence[int]")
LOOM_PASSTHROUGH_CASTER(loom::python::OperandArg, "Tensor | float | numpy.ndarray")
LOOM_PASSTHROUGH_CASTER(loom::python::FeedsArg, "collections.abc.Mapping[str, object]")
LOOM_PASSTHROUGH_CASTER(loom::python::OutputsArg, "Tensor | collections.abc.Sequence[Tensor]")
LOOM_PASSTHROUGH_CASTER(loom::python::StartsArg, "Tensor | collections.abc.Sequence[int]")

#undef LOOM_PASSTHROUGH_CASTER

}  // namespace nanobind::detail
