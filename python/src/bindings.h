// Shared pieces of the nanobind module loom._loom: one bind_* function per file, and the
// conversions between Python objects and Loom's types that several files use.
#pragma once

#include <nanobind/nanobind.h>

#include <optional>
#include <string>

#include "loom/dtype.h"
#include "loom/shape.h"
#include "loom/tensor_data.h"

namespace loom::python {

namespace nb = nanobind;

void bind_errors(nb::module_& m);
void bind_dtypes(nb::module_& m);
void bind_tensor_data(nb::module_& m);
void bind_graph(nb::module_& m);
void bind_ops(nb::module_& m);
void bind_attention(nb::module_& m);
void bind_fft(nb::module_& m);
void bind_executable(nb::module_& m);
void bind_models(nb::module_& m);

// A dtype as Python users write it: loom.float16, "float16", "f16", numpy.float16,
// numpy.dtype("float16"), ml_dtypes.bfloat16, torch.float16. Throws loom::Error(dtype).
DType dtype_from_py(nb::handle obj);

// A shape as a sequence of ints and symbol names ("seq").
Shape shape_from_py(nb::handle obj);
nb::tuple shape_to_py(const Shape& shape);
nb::tuple extents_to_py(const Extents& extents);

// Axes as None (every axis), one int, or a sequence of ints.
std::vector<int64_t> axes_from_py(nb::handle obj);

// Data from Python: a loom.TensorData, a NumPy array (zero-copy when C-contiguous and
// aligned), an object with __dlpack__ (torch on the CPU or CUDA, zero-copy when
// contiguous), or a scalar / nested list (through numpy.asarray). `want` is the dtype
// that scalars and lists become (and that arrays must have, when set); `what` names the
// value in error messages ("feed 'x'"). Read-only memory (a read-only or memory-mapped
// array, bytes) is copied, since TensorData's memory is exported writable (numpy(),
// __dlpack__), unless `share_readonly` is set: for feeds, which Loom only reads and which
// never reach Python again.
TensorData tensor_data_from_py(nb::handle obj, std::optional<DType> want = std::nullopt,
                               const std::string& what = "value", bool share_readonly = false);

// Output forms of TensorData.
enum class OutputKind { numpy, torch, loom };
OutputKind output_kind_from_str(const std::string& text);
// NumPy shares the memory when the data is on the host; device data is copied to the host.
nb::object tensor_data_to_numpy(const TensorData& data);
// torch.Tensor on the data's device, sharing its memory through DLPack.
nb::object tensor_data_to_torch(const TensorData& data);
nb::object tensor_data_to_py(const TensorData& data, OutputKind kind);

// Cached Python objects imported on first use (numpy is not needed to import loom).
nb::module_& numpy_module();
nb::handle bfloat16_numpy_dtype();  // numpy.dtype(ml_dtypes.bfloat16)
// numpy.dtype of a Loom dtype; throws loom::Error(unsupported) for the packed ones.
nb::object numpy_dtype_of(DType dtype);

}  // namespace loom::python
