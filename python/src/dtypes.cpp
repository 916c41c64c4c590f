// loom.DType and the names by which Python users write dtypes (Loom's, NumPy's, torch's).
#include <nanobind/stl/string.h>

#include <map>
#include <string_view>

#include "bindings.h"
#include "dtype_table.h"
#include "loom/error.h"

namespace loom::python {
namespace {

// Every spelling maps to one DType; NumPy's and torch's names come first.
const std::map<std::string, DType, std::less<>>& names_to_dtype() {
  static const std::map<std::string, DType, std::less<>> table = {
      {"float32", DType::f32},   {"f32", DType::f32},       {"float", DType::f32},
      {"float16", DType::f16},   {"f16", DType::f16},       {"half", DType::f16},
      {"bfloat16", DType::bf16}, {"bf16", DType::bf16},     {"int8", DType::i8},
      {"i8", DType::i8},         {"uint8", DType::u8},      {"u8", DType::u8},
      {"int32", DType::i32},     {"i32", DType::i32},       {"int", DType::i32},
      {"int64", DType::i64},     {"i64", DType::i64},       {"long", DType::i64},
      {"bool", DType::boolean},  {"bool_", DType::boolean}, {"boolean", DType::boolean},
      {"complex64", DType::c64}, {"c64", DType::c64},       {"cfloat", DType::c64},
      {"int4", DType::i4},       {"i4", DType::i4},         {"uint4", DType::u4},
      {"u4", DType::u4},
  };
  return table;
}

DType dtype_from_name_or_fail(std::string_view name, std::string_view shown) {
  const auto& table = names_to_dtype();
  auto it = table.find(name);
  if (it == table.end()) {
    fail(ErrorKind::dtype, std::string(shown) +
                               " is not a Loom dtype (Loom has float32, float16, bfloat16, "
                               "int8, uint8, int32, int64, bool, complex64, int4, uint4)");
  }
  return it->second;
}

}  // namespace

nb::module_& numpy_module() {
  static nb::module_* numpy = new nb::module_(nb::module_::import_("numpy"));
  return *numpy;
}

nb::handle bfloat16_numpy_dtype() {
  static nb::object* dtype = [] {
    nb::object ml_dtypes = nb::module_::import_("ml_dtypes");
    return new nb::object(numpy_module().attr("dtype")(ml_dtypes.attr("bfloat16")));
  }();
  return *dtype;
}

nb::object numpy_dtype_of(DType dtype) {
  const DTypeInterop* row = interop_of(dtype);
  if (!row) {
    fail(ErrorKind::unsupported, std::string(dtype_name(dtype)) + " has no NumPy dtype");
  }
  if (dtype == DType::bf16) return nb::borrow(bfloat16_numpy_dtype());
  return numpy_module().attr("dtype")(row->numpy_name);
}

DType dtype_from_py(nb::handle obj) {
  if (nb::isinstance<DType>(obj)) return nb::cast<DType>(obj);
  if (obj.is_none()) fail(ErrorKind::dtype, "dtype is None");
  if (PyUnicode_Check(obj.ptr())) {
    std::string name = nb::cast<std::string>(obj);
    return dtype_from_name_or_fail(name, "'" + name + "'");
  }
  // torch.dtype prints as "torch.float16"; anything else NumPy understands names itself.
  std::string_view type_name = Py_TYPE(obj.ptr())->tp_name;
  if (type_name == "torch.dtype") {
    std::string text = nb::cast<std::string>(nb::str(obj));
    std::string_view name = text;
    if (name.starts_with("torch.")) name.remove_prefix(6);
    return dtype_from_name_or_fail(name, text);
  }
  nb::object numpy_dtype;
  try {
    numpy_dtype = numpy_module().attr("dtype")(obj);
  } catch (nb::python_error&) {
    std::string shown = nb::cast<std::string>(nb::repr(obj));
    fail(ErrorKind::dtype, shown + " is not a dtype");
  }
  std::string name = nb::cast<std::string>(numpy_dtype.attr("name"));
  return dtype_from_name_or_fail(name, "numpy dtype " + name);
}

void bind_dtypes(nb::module_& m) {
  nb::enum_<DType>(m, "DType", "Element type of a tensor.")
      .value("float32", DType::f32)
      .value("float16", DType::f16)
      .value("bfloat16", DType::bf16)
      .value("int8", DType::i8)
      .value("uint8", DType::u8)
      .value("int32", DType::i32)
      .value("int64", DType::i64)
      .value("bool", DType::boolean)
      .value("complex64", DType::c64)
      .value("int4", DType::i4, "Packed, two per byte, low nibble first.")
      .value("uint4", DType::u4, "Packed, two per byte, low nibble first.")
      .def_prop_ro(
          "itemsize_bits", [](DType d) { return dtype_info(d).bits; },
          "Storage bits per element (4 for the packed int4/uint4).")
      .def_prop_ro(
          "is_floating_point", [](DType d) { return dtype_info(d).is_float; },
          "True for float32, float16 and bfloat16.");

  const std::pair<const char*, DType> aliases[] = {
      {"float32", DType::f32}, {"float16", DType::f16},   {"bfloat16", DType::bf16},
      {"int8", DType::i8},     {"uint8", DType::u8},      {"int32", DType::i32},
      {"int64", DType::i64},   {"bool_", DType::boolean}, {"complex64", DType::c64},
      {"int4", DType::i4},     {"uint4", DType::u4},
  };
  for (const auto& [name, dtype] : aliases) m.attr(name) = dtype;

  m.def(
      "to_numpy_dtype", [](nb::handle obj) { return numpy_dtype_of(dtype_from_py(obj)); },
      nb::arg("dtype").none(),
      "The numpy.dtype of a Loom dtype (ml_dtypes.bfloat16 for bfloat16).");
  m.def(
      "dtype", [](nb::handle obj) { return dtype_from_py(obj); }, nb::arg("obj").none(),
      "The Loom dtype for `obj`: a loom.DType, a name ('float16', 'f16'), a NumPy dtype or\n"
      "scalar type (ml_dtypes.bfloat16 for bfloat16), or a torch.dtype.");
}

}  // namespace loom::python
