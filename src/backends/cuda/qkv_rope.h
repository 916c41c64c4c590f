// The CUDA GEMV of quantized_qkv_rope (src/ops/projection_ops.cpp), defined beside the other
// GEMVs in quantized_matmul.cu and launched by the projection kernels (projection.cu).
#pragma once

#include <cstdint>

#include "loom/dtype.h"

namespace loom::quant {

struct QkvRopeArgs {
  uint32_t ggml_type = 0;     // GGUF blocks of 32 (as cuda_ggml_gemv takes)
  const void* blocks[3]{};    // q, k, v weights, [n[i], K] as blocks
  int64_t weight_bytes[3]{};  // checked against n and K
  int64_t n[3]{};
  float* y[3]{};  // f32 [m, n[i]]
  int64_t k = 0, m = 0;
  const void* x = nullptr;  // [m, K]
  DType x_dtype = DType::f32;
  const void* norm_weight = nullptr;  // [K] in x's dtype, or null
  float norm_eps = 0.f;
  const void* offset = nullptr;  // device i32 or i64: the rows' position
  bool offset_i64 = false;
  int64_t head_dim = 0, dims = 0;  // dims: rotated features per head (even, <= head_dim)
  bool interleaved = false;
  double base = 10000.0, scale = 1.0;
  bool weights_invariant = false;  // see GemvEdges
  // quantized_qkv_rope_cache: k (c = 0) and v (c = 1) go into a window of a cache instead of
  // y[1 + c], their elements in order filling the window at the run-time starts (clamped so it
  // stays inside, as slice_update's); data null: into y.
  struct CacheWindow {
    float* data = nullptr;
    int rank = 0;                      // at most 4
    int64_t window[4]{}, extent[4]{};  // the window's and the cache's shapes
  } caches[2];
  const void* starts = nullptr;  // device i32 or i64 [rank]
  bool starts_i64 = false;
};

// Rows of x beyond 8 go in groups of 8, as cuda_ggml_gemv's.
void cuda_ggml_gemv_qkv_rope(const QkvRopeArgs& args, void* stream);

}  // namespace loom::quant
