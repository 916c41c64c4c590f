// Fast DLPack exchange with PyTorch. torch.Tensor.__dlpack__ and torch.from_dlpack are
// Python code costing microseconds per call; torch's C entry points (_to_dlpack,
// _from_dlpack) do the same work in a fraction of that. Used only when torch is already
// imported; anything missing falls back to the DLPack protocol.
#pragma once

#include "bindings.h"

namespace loom::python {

// A DLPack capsule of `obj` when it is a torch.Tensor that can take the fast path (CPU, or
// CUDA while torch's current stream is the legacy default stream, which Loom's streams
// follow); an invalid object otherwise.
nb::object torch_fast_capsule(nb::handle obj);
// torch.Tensor from a DLPack capsule; invalid when the fast path is not available.
nb::object torch_from_capsule(nb::handle capsule);

}  // namespace loom::python
