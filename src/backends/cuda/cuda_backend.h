// Entry points of the CUDA backend that the runtime uses (compiled only with LOOM_CUDA).
#pragma once

#include "backends/backend.h"

namespace loom::cuda {

// True when the CUDA runtime sees at least one GPU.
bool device_present();
// The process-wide CUDA backend for GPU `index` (made on first use).
Backend& backend(int index);
// The calling thread's current CUDA device (cudaGetDevice), and making one current; for
// tests that check that Loom gives a thread its device back.
int current_device();
void set_current_device(int index);

}  // namespace loom::cuda
