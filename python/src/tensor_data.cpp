// loom.TensorData: concrete data on a device, as run() takes and (with output="loom")
// returns it. It speaks DLPack, so torch.from_dlpack and numpy.from_dlpack take it as is.
#include <nanobind/ndarray.h>
#include <nanobind/stl/string.h>

#include "backends/backend.h"
#include "bindings.h"
#include "dtype_table.h"
#include "loom/error.h"

namespace loom::python {
namespace {

nb::object dlpack_capsule(const TensorData& data) {
  const DTypeInterop* row = interop_of(data.dtype());
  if (!row)
    fail(ErrorKind::unsupported, std::string(dtype_name(data.dtype())) + " has no DLPack form");
  std::vector<size_t> shape(data.shape().begin(), data.shape().end());
  bool on_cuda = data.device().kind == DeviceKind::cuda;
  nb::capsule owner(new TensorData(data),
                    [](void* p) noexcept { delete static_cast<TensorData*>(p); });
  nb::ndarray<> array(data.data(), shape.size(), shape.data(), owner, data.strides().data(),
                      nb::dlpack::dtype{row->dlpack_code, row->dlpack_bits, 1},
                      on_cuda ? nb::device::cuda::value : nb::device::cpu::value,
                      on_cuda ? data.device().index : 0);
  return nb::cast(std::move(array));
}

std::string repr_of(const TensorData& data) {
  if (!data.defined()) return "TensorData(empty)";
  return std::string("TensorData(") + dtype_name(data.dtype()) + to_string(data.shape()) +
         ", device=" + data.device().str() + ")";
}

}  // namespace

void bind_tensor_data(nb::module_& m) {
  nb::class_<TensorData>(m, "TensorData",
                         "Concrete data on a device: dtype, shape, strides and a shared buffer.\n"
                         "Made by loom.tensor_data() or returned by Executable.run(output='loom').")
      .def_prop_ro("shape", [](const TensorData& d) { return extents_to_py(d.shape()); })
      .def_prop_ro(
          "strides", [](const TensorData& d) { return extents_to_py(d.strides()); },
          "Strides in elements.")
      .def_prop_ro("dtype", &TensorData::dtype)
      .def_prop_ro("device", [](const TensorData& d) { return d.device().str(); })
      .def_prop_ro("ndim", &TensorData::rank)
      .def_prop_ro("size", &TensorData::numel, "Number of elements.")
      .def_prop_ro("nbytes", &TensorData::nbytes)
      .def_prop_ro(
          "data_ptr", [](const TensorData& d) { return uintptr_t(d.data()); },
          "Address of the first element (host or device memory).")
      .def("is_contiguous", &TensorData::is_contiguous)
      .def(
          "to",
          [](const TensorData& d, const std::string& device) {
            return d.to(Device::parse(device));
          },
          nb::arg("device"),
          "A copy on `device` ('cpu', 'cuda', 'cuda:1'); itself when already there.")
      .def("numpy", &tensor_data_to_numpy,
           "A NumPy array sharing this memory (copied to the host first when on a GPU).")
      .def("torch", &tensor_data_to_torch, "A torch.Tensor on the same device sharing this memory.")
      .def(
          "__array__",
          [](const TensorData& d, nb::handle dtype, nb::handle) {
            nb::object array = tensor_data_to_numpy(d);
            return dtype.is_none() ? array : array.attr("astype")(dtype);
          },
          nb::arg("dtype") = nb::none(), nb::arg("copy") = nb::none())
      .def(
          "__dlpack__",
          [](const TensorData& d, nb::kwargs kwargs) {
            // DLPack: the consumer names the stream it will read on (None: the legacy
            // default stream; -1: it orders itself); that stream waits for anything Loom may
            // still have in flight for this memory. Keyword-only, as the protocol has it.
            if (d.device().kind == DeviceKind::cuda) {
              intptr_t consumer = 1;
              if (kwargs.contains("stream") && !kwargs["stream"].is_none()) {
                nb::handle stream = kwargs["stream"];
                if (!PyLong_Check(stream.ptr()))
                  fail(ErrorKind::value, "__dlpack__: stream must be an int or None");
                consumer = nb::cast<intptr_t>(stream);
              }
              backend_for(d.device()).release_to_stream(consumer);
            }
            return dlpack_capsule(d);
          },
          "DLPack capsule sharing this memory; `stream` (keyword) is the consumer's stream.")
      .def("__dlpack_device__",
           [](const TensorData& d) {
             bool on_cuda = d.device().kind == DeviceKind::cuda;
             return nb::make_tuple(on_cuda ? nb::device::cuda::value : nb::device::cpu::value,
                                   on_cuda ? d.device().index : 0);
           })
      .def("__repr__", &repr_of);

  m.def(
      "tensor_data",
      [](nb::handle obj, nb::handle dtype) {
        std::optional<DType> want;
        if (!dtype.is_none()) want = dtype_from_py(dtype);
        return tensor_data_from_py(obj, want, "value");
      },
      nb::arg("obj").none(), nb::arg("dtype") = nb::none(),
      "Wraps a NumPy array or a DLPack object (torch tensor) as TensorData without a copy\n"
      "when it is contiguous; copies other arrays, scalars and lists. With `dtype`, arrays\n"
      "must have it and scalars and lists are converted to it.");
}

}  // namespace loom::python
