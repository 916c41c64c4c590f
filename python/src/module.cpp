// The extension module loom._loom; the `loom` package re-exports it.
#include <nanobind/nanobind.h>

#include "bindings.h"
#include "loom/device.h"
#include "loom/version.h"

NB_MODULE(_loom, m) {
  namespace python = loom::python;
  m.doc() = "Loom: build a tensor graph, compile it, run it many times (CPU and CUDA).";
  m.attr("__version__") = loom::kVersion;
  python::bind_errors(m);
  python::bind_dtypes(m);
  python::bind_tensor_data(m);
  python::bind_graph(m);
  python::bind_ops(m);
  python::bind_attention(m);
  python::bind_fft(m);
  python::bind_executable(m);
  python::bind_models(m);
  m.def("cuda_available", &loom::cuda_available,
        "True when Loom was built with CUDA and a GPU is present.");
}
