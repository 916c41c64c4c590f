// Python objects to TensorData. NumPy arrays come through the buffer protocol and other
// arrays (torch on the CPU or CUDA) through DLPack; both are wrapped without a copy when
// the memory is contiguous, aligned and writable (read-only memory is copied unless the
// caller only reads it), and the Python object stays alive with the data. A CUDA producer's
// pending work is handed over on the device (Backend::accept_from_stream): Loom reads the
// memory only after it, without a host wait.
#include <nanobind/ndarray.h>
#include <nanobind/stl/string.h>

#include <cstring>

#include "backends/backend.h"
#include "bindings.h"
#include "dtype_table.h"
#include "loom/error.h"
#include "torch_interop.h"

namespace loom::python {
namespace {

// Deleters run wherever Loom drops its last reference (possibly a thread without the GIL,
// possibly after the interpreter is gone, when leaking is the only safe choice).
template <class T>
std::shared_ptr<void> python_owner(T* held) {
  return std::shared_ptr<void>(held, [](void* p) {
    if (!nb::is_alive()) return;
    nb::gil_scoped_acquire gil;
    delete static_cast<T*>(p);
  });
}

struct BufferView {
  Py_buffer view{};
  ~BufferView() { PyBuffer_Release(&view); }
};

struct DLPackView {
  nb::ndarray<> array;
};

std::string type_name_of(nb::handle obj) { return Py_TYPE(obj.ptr())->tp_name; }

// The dtype of a buffer-protocol format. `bf16_bits` marks a uint16 view of bfloat16 data
// (NumPy cannot export ml_dtypes' bfloat16 through the buffer protocol).
std::optional<DType> dtype_from_format(const char* format, Py_ssize_t itemsize, bool bf16_bits) {
  std::string_view f = format ? format : "B";  // no format means unsigned bytes
  if (!f.empty() && (f[0] == '@' || f[0] == '=' || f[0] == '<')) f.remove_prefix(1);
  if (bf16_bits) return f == "H" && itemsize == 2 ? std::optional(DType::bf16) : std::nullopt;
  return dtype_of_buffer_format(f, itemsize);
}

bool is_c_contiguous(const Extents& shape, const Strides& strides) {
  int64_t expected = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    if (shape[i] == 0) return true;
    if (shape[i] != 1 && strides[i] != expected) return false;
    expected *= shape[i];
  }
  return true;
}

void check_dtype_wanted(DType got, std::optional<DType> want, const std::string& what) {
  if (want && *want != got) {
    fail(ErrorKind::dtype,
         what + " has dtype " + dtype_name(got) + " but " + dtype_name(*want) + " is expected");
  }
}

[[noreturn]] void fail_unsupported_dtype(nb::handle obj, const std::string& what) {
  std::string dtype = "unknown";
  try {
    nb::object numpy_dtype = obj.attr("dtype");
    dtype = nb::cast<std::string>(nb::str(numpy_dtype));
  } catch (nb::python_error&) {
  }
  fail(ErrorKind::dtype, what + " has dtype " + dtype +
                             ", which Loom does not have (convert it first, e.g. with "
                             ".astype(numpy.float32))");
}

nb::handle numpy_ndarray_type() {
  static nb::object* type = new nb::object(numpy_module().attr("ndarray"));
  return *type;
}

// A C-contiguous, aligned copy of a NumPy array, in native byte order.
nb::object numpy_contiguous_copy(nb::handle array) {
  return numpy_module().attr("array")(array, nb::arg("order") = "C", nb::arg("copy") = true);
}

TensorData from_numpy(nb::handle array, std::optional<DType> want, const std::string& what,
                      bool share_readonly, bool bf16_bits = false, int depth = 0) {
  auto held = std::make_unique<BufferView>();
  if (PyObject_GetBuffer(array.ptr(), &held->view, PyBUF_RECORDS_RO) != 0) {
    PyErr_Clear();
    nb::object dtype = array.attr("dtype");
    if (!bf16_bits && dtype.equal(bfloat16_numpy_dtype())) {
      // The same bytes as uint16; the flag tells dtype_from_format what they are.
      nb::object bits = array.attr("view")(numpy_module().attr("uint16"));
      return from_numpy(bits, want, what, share_readonly, true, depth);
    }
    fail_unsupported_dtype(array, what);
  }
  const Py_buffer& v = held->view;
  std::string_view format = v.format ? v.format : "B";
  if (!format.empty() && (format[0] == '>' || format[0] == '!')) {
    if (depth > 0) fail(ErrorKind::dtype, what + " is big-endian");
    nb::object native = array.attr("astype")(array.attr("dtype").attr("newbyteorder")("="));
    return from_numpy(native, want, what, share_readonly, bf16_bits, depth + 1);
  }
  std::optional<DType> dtype = dtype_from_format(v.format, v.itemsize, bf16_bits);
  if (!dtype) fail_unsupported_dtype(array, what);
  check_dtype_wanted(*dtype, want, what);

  Extents shape(v.shape, v.shape + v.ndim);
  Strides strides(size_t(v.ndim));
  bool strides_whole = true;
  for (int i = 0; i < v.ndim; ++i) {
    strides[i] = v.strides[i] / v.itemsize;
    strides_whole &= v.strides[i] % v.itemsize == 0;
  }
  bool aligned = reinterpret_cast<uintptr_t>(v.buf) % uintptr_t(v.itemsize) == 0;
  bool readonly_copy = v.readonly && !share_readonly;
  if (!strides_whole || !aligned || !is_c_contiguous(shape, strides) || readonly_copy) {
    // Strided, negative-stride, broadcast (zero-stride) and misaligned arrays are copied:
    // kernels read contiguous, aligned memory. Read-only memory (a read-only or mmap'd
    // array, bytes) is copied too: TensorData's memory is exported writable.
    if (depth > 0) fail(ErrorKind::internal, "numpy copy of " + what + " is not contiguous");
    nb::object copy = numpy_contiguous_copy(array);
    return from_numpy(copy, want, what, share_readonly, bf16_bits, depth + 1);
  }
  void* data = v.buf;
  Strides contiguous = contiguous_strides(shape);
  return TensorData::wrap(data, *dtype, std::move(shape), std::move(contiguous), Device::cpu(),
                          python_owner(held.release()));
}

Device device_from_dlpack(int32_t type, int32_t id, const std::string& what) {
  if (type == nb::device::cpu::value || type == nb::device::cuda_host::value) {
    return Device::cpu();
  }
  if (type == nb::device::cuda::value || type == nb::device::cuda_managed::value) {
    return Device::cuda(id);
  }
  fail(ErrorKind::device,
       what + " lives on DLPack device type " + std::to_string(type) + ", which Loom cannot read");
}

TensorData from_capsule(nb::handle capsule, nb::handle source, std::optional<DType> want,
                        const std::string& what, int depth);

TensorData from_dlpack(nb::handle obj, std::optional<DType> want, const std::string& what,
                       int depth = 0) {
  nb::tuple device = nb::cast<nb::tuple>(obj.attr("__dlpack_device__")());
  int32_t device_type = nb::cast<int32_t>(device[0]);
  int32_t device_id = nb::cast<int32_t>(device[1]);
  Device loom_device = device_from_dlpack(device_type, device_id, what);
  if (loom_device.kind != DeviceKind::cuda) {
    return from_capsule(obj.attr("__dlpack__")(), obj, want, what, depth);
  }
  // A CUDA producer makes its work visible on the stream the consumer names: the backend's
  // handoff stream, which every later Loom read of device memory waits for.
  Backend& backend = backend_for(loom_device);
  intptr_t handoff = backend.handoff_stream();
  nb::object capsule = obj.attr("__dlpack__")(nb::arg("stream") = handoff);
  backend.accept_from_stream(handoff);
  return from_capsule(capsule, obj, want, what, depth);
}

// `source` is the object the capsule came from (None for a bare capsule): it is asked for a
// contiguous copy when the capsule's memory is strided.
TensorData from_capsule(nb::handle capsule, nb::handle source, std::optional<DType> want,
                        const std::string& what, int depth) {
  nb::ndarray<> array;
  if (!nb::try_cast(capsule, array)) {
    fail(ErrorKind::value, what + " gave no usable DLPack tensor (a capsule can be used once)");
  }
  Device loom_device = device_from_dlpack(array.device_type(), array.device_id(), what);
  nb::handle obj = source.is_none() ? capsule : source;
  nb::dlpack::dtype dl = array.dtype();
  std::optional<DType> dtype = dtype_of_dlpack(dl.code, dl.bits, dl.lanes);
  if (!dtype) fail_unsupported_dtype(obj, what);
  check_dtype_wanted(*dtype, want, what);

  Extents shape(array.ndim());
  Strides strides(array.ndim());
  bool nonnegative = true;
  for (size_t i = 0; i < array.ndim(); ++i) {
    shape[i] = array.shape(i);
    strides[i] = array.stride(i);
    nonnegative &= strides[i] >= 0;
  }
  size_t itemsize = storage_bytes(*dtype, 1);
  bool aligned = reinterpret_cast<uintptr_t>(array.data()) % itemsize == 0;
  if (!nonnegative || !aligned || !is_c_contiguous(shape, strides)) {
    // Producers know best how to make their own memory contiguous.
    if (depth == 0 && !source.is_none() && nb::hasattr(source, "contiguous")) {
      return from_dlpack(obj.attr("contiguous")(), want, what, depth + 1);
    }
    if (depth == 0 && !source.is_none() && loom_device.kind == DeviceKind::cpu) {
      nb::object host = numpy_module().attr("from_dlpack")(source);
      return from_numpy(numpy_contiguous_copy(host), want, what, false);
    }
    fail(ErrorKind::unsupported, what + " is not contiguous; make it contiguous first");
  }
  void* data = array.data();
  if (!data && numel(shape) != 0) {
    fail(ErrorKind::value, what + " has no memory (was its storage freed?)");
  }
  Strides contiguous = contiguous_strides(shape);
  return TensorData::wrap(data, *dtype, std::move(shape), std::move(contiguous), loom_device,
                          python_owner(new DLPackView{std::move(array)}));
}

// Scalars and nested lists, through NumPy, in the wanted dtype (float32 for Python floats,
// int64 for ints, bool for bools when nothing is wanted).
TensorData from_python_values(nb::handle obj, std::optional<DType> want, const std::string& what,
                              bool share_readonly) {
  nb::module_& np = numpy_module();
  nb::object array;
  try {
    if (want) {
      array = np.attr("asarray")(obj, nb::arg("dtype") = numpy_dtype_of(*want));
    } else {
      array = np.attr("asarray")(obj);
      std::string kind = nb::cast<std::string>(array.attr("dtype").attr("kind"));
      if (kind == "f") array = array.attr("astype")(np.attr("float32"));
      if (kind == "c") array = array.attr("astype")(np.attr("complex64"));
    }
  } catch (nb::python_error& e) {
    fail(ErrorKind::value,
         what + " (" + type_name_of(obj) + ") cannot be made into an array: " + e.what());
  }
  if (nb::cast<std::string>(array.attr("dtype").attr("kind")) == "O") {
    fail(ErrorKind::value, what + " (" + type_name_of(obj) + ") is not numeric data");
  }
  return from_numpy(array, want, what, share_readonly);
}

}  // namespace

TensorData tensor_data_from_py(nb::handle obj, std::optional<DType> want, const std::string& what,
                               bool share_readonly) {
  if (!obj.is_valid() || obj.is_none()) fail(ErrorKind::value, what + " is None");
  if (nb::isinstance<TensorData>(obj)) {
    const TensorData& data = nb::cast<const TensorData&>(obj);
    if (!data.defined()) fail(ErrorKind::value, what + " is an empty TensorData");
    check_dtype_wanted(data.dtype(), want, what);
    return data;
  }
  if (PyObject_TypeCheck(obj.ptr(), reinterpret_cast<PyTypeObject*>(numpy_ndarray_type().ptr()))) {
    return from_numpy(obj, want, what, share_readonly);
  }
  if (nb::object capsule = torch_fast_capsule(obj); capsule.is_valid()) {
    return from_capsule(capsule, obj, want, what, 0);
  }
  if (nb::hasattr(obj, "__dlpack__") && nb::hasattr(obj, "__dlpack_device__")) {
    return from_dlpack(obj, want, what);
  }
  if (PyCapsule_CheckExact(obj.ptr())) return from_capsule(obj, nb::none(), want, what, 0);
  if (PyObject_CheckBuffer(obj.ptr()) && !PyBytes_Check(obj.ptr())) {
    return from_numpy(numpy_module().attr("asarray")(obj), want, what, share_readonly);
  }
  if (PyUnicode_Check(obj.ptr()) || PyBytes_Check(obj.ptr())) {
    fail(ErrorKind::value, what + " is a string, not numeric data");
  }
  return from_python_values(obj, want, what, share_readonly);
}

}  // namespace loom::python
