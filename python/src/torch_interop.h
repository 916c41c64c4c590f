// Fast DLPack exchange with PyTorch. torch.Tensor.__dlpack__ and torch.from_dlpack are
// Python code costing microseconds per call; torch's C entry points (_to_dlpack,
// _from_dlpack) do the same work in a fraction of that. Used only when torch is already
// imported; anything missing falls back to the DLPack protocol.
#pragma once

#include "bindings.h"

namespace loom::python {

// A DLPack capsule of `obj` when it is a torch.Tensor that can take the fast path (CPU, or
// CUDA when torch can name its current stream, whose queued work is then handed over to
// Loom with an event: see Backend::accept_from_stream); an invalid object otherwise.
nb::object torch_fast_capsule(nb::handle obj);
// torch.Tensor from a DLPack capsule; invalid when the fast path is not available.
nb::object torch_from_capsule(nb::handle capsule);
// torch's current stream on GPU `device` as DLPack names it (1 for the legacy default
// stream); 1 when torch is not imported or cannot say.
intptr_t torch_current_stream(int device);

}  // namespace loom::python
