#include "torch_interop.h"

#include <nanobind/ndarray.h>

#include "backends/backend.h"

namespace loom::python {
namespace {

struct TorchEntryPoints {
  PyTypeObject* tensor_type = nullptr;
  nb::object to_dlpack;           // torch._C._to_dlpack(tensor) -> capsule
  nb::object from_dlpack;         // torch._C._from_dlpack(capsule) -> tensor
  nb::object current_raw_stream;  // torch._C._cuda_getCurrentRawStream(device) -> int
};

// Looked up once torch is in sys.modules; null before (nothing can be a torch tensor yet).
const TorchEntryPoints* torch_entry_points() {
  static const TorchEntryPoints* found = nullptr;
  static bool tried = false;
  if (found || tried) return found;
  PyObject* modules = PyImport_GetModuleDict();
  PyObject* torch = PyDict_GetItemString(modules, "torch");
  if (!torch) return nullptr;
  tried = true;
  try {
    auto* entry = new TorchEntryPoints();
    nb::handle torch_module(torch);
    nb::object tensor = torch_module.attr("Tensor");
    nb::object c = torch_module.attr("_C");
    entry->tensor_type = reinterpret_cast<PyTypeObject*>(tensor.release().ptr());
    entry->to_dlpack = c.attr("_to_dlpack");
    entry->from_dlpack = c.attr("_from_dlpack");
    if (nb::hasattr(c, "_cuda_getCurrentRawStream")) {
      entry->current_raw_stream = c.attr("_cuda_getCurrentRawStream");
    }
    found = entry;
  } catch (nb::python_error&) {
    found = nullptr;  // an unusual torch: the DLPack protocol still works
  }
  return found;
}

}  // namespace

nb::object torch_fast_capsule(nb::handle obj) {
  const TorchEntryPoints* torch = torch_entry_points();
  if (!torch || !PyObject_TypeCheck(obj.ptr(), torch->tensor_type)) return {};
  nb::object capsule = torch->to_dlpack(obj);
  auto* managed =
      static_cast<nb::dlpack::dltensor*>(PyCapsule_GetPointer(capsule.ptr(), "dltensor"));
  if (!managed) {
    PyErr_Clear();
    return {};
  }
  // The DLManagedTensor starts with its DLTensor.
  const nb::dlpack::dltensor& t = *managed;
  if (t.device.device_type == nb::device::cuda::value) {
    // torch's work on its current stream (which may have written this tensor) is ordered
    // before every Loom read of the memory, on the device: Loom's streams do not follow the
    // legacy default stream.
    if (!torch->current_raw_stream.is_valid()) return {};
    intptr_t producer = torch_current_stream(t.device.device_id);
    backend_for(Device::cuda(t.device.device_id)).accept_from_stream(producer);
  }
  return capsule;
}

intptr_t torch_current_stream(int device) {
  const TorchEntryPoints* torch = torch_entry_points();
  if (!torch || !torch->current_raw_stream.is_valid()) return 1;
  intptr_t raw = nb::cast<intptr_t>(torch->current_raw_stream(device));
  return raw == 0 ? 1 : raw;  // torch's 0 is the legacy default stream, DLPack's 1
}

nb::object torch_from_capsule(nb::handle capsule) {
  const TorchEntryPoints* torch = torch_entry_points();
  if (!torch) return {};
  return torch->from_dlpack(capsule);
}

}  // namespace loom::python
