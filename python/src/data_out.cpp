// TensorData to NumPy arrays and torch tensors. Both share Loom's memory: the array holds
// a capsule that owns a reference to the TensorData's buffer.
#include <nanobind/ndarray.h>
#include <nanobind/stl/string.h>

#include "backends/backend.h"
#include "bindings.h"
#include "dtype_table.h"
#include "loom/error.h"
#include "torch_interop.h"

namespace loom::python {
namespace {

nb::dlpack::dtype dlpack_dtype(DType dtype) {
  const DTypeInterop* row = interop_of(dtype);
  if (!row) {
    fail(ErrorKind::unsupported,
         std::string("dtype ") + dtype_name(dtype) + " (packed) has no NumPy or DLPack form");
  }
  return nb::dlpack::dtype{row->dlpack_code, row->dlpack_bits, 1};
}

nb::capsule owner_of(const TensorData& data) {
  return nb::capsule(new TensorData(data),
                     [](void* p) noexcept { delete static_cast<TensorData*>(p); });
}

struct ArrayParts {
  std::vector<size_t> shape;
  std::vector<int64_t> strides;
};

ArrayParts parts_of(const TensorData& data) {
  ArrayParts parts;
  for (int64_t extent : data.shape()) parts.shape.push_back(size_t(extent));
  parts.strides.assign(data.strides().begin(), data.strides().end());
  return parts;
}

}  // namespace

nb::object tensor_data_to_numpy(const TensorData& data) {
  if (!data.defined()) fail(ErrorKind::value, "empty TensorData has no array form");
  TensorData host = data.device().kind == DeviceKind::cpu ? data : data.to_host();
  ArrayParts parts = parts_of(host);
  // NumPy's buffer protocol has no bfloat16: export the bits as uint16 and view them.
  bool bf16 = host.dtype() == DType::bf16;
  nb::dlpack::dtype dt = bf16 ? nb::dtype<uint16_t>() : dlpack_dtype(host.dtype());
  nb::ndarray<nb::numpy> array(host.data(), parts.shape.size(), parts.shape.data(), owner_of(host),
                               parts.strides.data(), dt, nb::device::cpu::value, 0);
  nb::object result = nb::cast(std::move(array));
  if (bf16) result = result.attr("view")(bfloat16_numpy_dtype());
  return result;
}

nb::object tensor_data_to_torch(const TensorData& data) {
  if (!data.defined()) fail(ErrorKind::value, "empty TensorData has no tensor form");
  static bool torch_present = [] {
    try {
      nb::module_::import_("torch.utils.dlpack");
      return true;
    } catch (nb::python_error&) {
      return false;
    }
  }();
  if (!torch_present) {
    fail(ErrorKind::unsupported, "output='torch' needs PyTorch (import torch failed)");
  }
  ArrayParts parts = parts_of(data);
  bool on_cuda = data.device().kind == DeviceKind::cuda;
  // No framework: nanobind makes a bare DLPack capsule, which torch's C entry point takes.
  nb::ndarray<> array(data.data(), parts.shape.size(), parts.shape.data(), owner_of(data),
                      parts.strides.data(), dlpack_dtype(data.dtype()),
                      on_cuda ? nb::device::cuda::value : nb::device::cpu::value,
                      on_cuda ? data.device().index : 0);
  nb::object capsule = nb::cast(std::move(array));
  // Loom's own work on the data has finished (run() ends synchronised); torch's current
  // stream still waits for memory that was handed to Loom and is handed back.
  if (on_cuda) {
    backend_for(data.device()).release_to_stream(torch_current_stream(data.device().index));
  }
  if (nb::object tensor = torch_from_capsule(capsule); tensor.is_valid()) return tensor;
  return nb::module_::import_("torch.utils.dlpack").attr("from_dlpack")(capsule);
}

OutputKind output_kind_from_str(const std::string& text) {
  if (text == "numpy" || text == "np") return OutputKind::numpy;
  if (text == "torch" || text == "pytorch") return OutputKind::torch;
  if (text == "loom" || text == "tensor_data") return OutputKind::loom;
  fail(ErrorKind::value, "output='" + text + "': expected 'numpy', 'torch' or 'loom'");
}

nb::object tensor_data_to_py(const TensorData& data, OutputKind kind) {
  switch (kind) {
    case OutputKind::numpy:
      return tensor_data_to_numpy(data);
    case OutputKind::torch:
      return tensor_data_to_torch(data);
    case OutputKind::loom:
      return nb::cast(data);
  }
  fail(ErrorKind::internal, "unknown output kind");
}

}  // namespace loom::python
