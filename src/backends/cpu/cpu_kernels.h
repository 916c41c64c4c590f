// CPU kernel families, one per op family (src/ops/families.def); the CPU backend calls each
// registration once.
#pragma once

#include "backends/backend.h"
#include "ops/position_params.h"

namespace loom::cpu {

#define LOOM_OP_FAMILY(name) void register_##name##_kernels(Backend& b);
#include "ops/families.def"
#undef LOOM_OP_FAMILY

// rms_norm over the last axis of `rows` rows of d elements (dtype f32, f16 or bf16), as the
// rms_norm kernel computes it; for kernels that take the norm as a prologue.
void rms_norm_rows(DType dtype, const void* x, const void* weight, void* y, int64_t rows, int64_t d,
                   float eps);

// rope over x [..., S, D] in place, rows at positions offset + s, as the rope kernel computes
// it; for kernels that rotate their own outputs.
void rope_in_place(TensorView& x, int64_t offset, const ops::RopeParams& p);

// Writes the contiguous `update` into the window of y at the run-time starts (clamped so the
// window stays inside), as slice_update's kernels do; for kernels that update a variable.
void write_window(TensorView& y, const TensorView& update, const TensorView& starts);

}  // namespace loom::cpu
