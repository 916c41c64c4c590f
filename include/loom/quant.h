// Weight quantization: a QuantScheme says how codes become values; QuantizedTensor holds a
// quantized [N, K] weight (N output channels, K the input dim) as ordinary tensors; the offline
// quantizer makes one from float weights; one table (gguf_formats) says how each GGUF block
// format is a QuantScheme. The GGUF-layout kernels are in quant_matmul below.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "loom/graph.h"
#include "loom/tensor_data.h"

namespace loom::quant {

// How a code becomes a value.
enum class QuantKind {
  affine,  // scale * (code - zero), or scale * code + min
  lookup,  // table[code], optionally times the group's scale
};

// Where an affine scheme's offset comes from.
enum class AffineOffset {
  midpoint,    // fixed zero = 2^(bits-1): symmetric, no stored offset (Q4_0, Q8_0 as signed)
  zero_point,  // an integer zero per group, stored as a u8 tensor: scale * (code - zero)
  min,         // a float min per group: scale * code + min (Q4_1, Q5_1, the K-quants)
};

enum class Granularity {
  per_tensor,   // one scale for the whole weight
  per_channel,  // one scale per output channel (row of W)
  per_block,    // one scale per block of `block_size` elements along K
};

struct QuantScheme {
  int bits = 8;  // 4, 5, 6 or 8; codes are packed little-endian bit streams, one per row
  QuantKind kind = QuantKind::affine;
  AffineOffset offset = AffineOffset::midpoint;  // affine only
  Granularity granularity = Granularity::per_channel;
  int64_t block_size = 0;  // per_block: 32, 64, 128 or 256 (16 for Q6_K's sub-blocks)
  // Second level: the per-block scales (and mins) are small integers of `scale_bits` bits
  // times one float per super-block of `super_block_size` elements (the K-quants). 0: none;
  // the per-block scales are floats of `scale_dtype`.
  int64_t super_block_size = 0;
  int scale_bits = 0;
  DType scale_dtype = DType::f32;
  // Lookup: 2^bits entries of `table_dtype`; `table_scaled` multiplies by the group's scale.
  DType table_dtype = DType::f32;
  bool table_scaled = false;

  int64_t levels() const { return int64_t(1) << bits; }
  // Throws loom::Error(value) naming what is inconsistent.
  void validate() const;
  // "affine int4 min per_block(32)", "lut8 f32 per_channel", ...
  std::string describe() const;
};

// How a GGUF block format stores a scheme.
enum class GgufMapping {
  exact,     // the scheme reads the blocks as they are
  repacked,  // the scheme is exact after a lossless repacking at load (K-quant scale bits)
};

struct GgufFormat {
  const char* name;     // "Q4_0"
  uint32_t ggml_type;   // ggml's type id
  int64_t block_size;   // elements per block
  int64_t block_bytes;  // bytes per block
  QuantScheme scheme;   // what the block means
  GgufMapping mapping;
  const char* formula;  // the value of element i, as text for docs and errors
  const int8_t* table;  // the fixed 16-entry table (IQ4_NL), else nullptr
};

// Every GGUF block format Loom understands, one row each.
std::span<const GgufFormat> gguf_formats();
// The row for a name ("Q4_1") or a ggml type id; nullptr when unknown.
const GgufFormat* find_gguf_format(std::string_view name);
const GgufFormat* find_gguf_format(uint32_t ggml_type);

// A quantized weight of shape [rows, cols] (rows = output channels N, cols = input dim K).
// `groups` is the number of scale groups per row: 1 (per tensor or per channel; per tensor
// repeats nothing: scales is [1, 1]) or cols / block_size.
struct QuantizedTensor {
  QuantScheme scheme;
  int64_t rows = 0, cols = 0;
  TensorData codes;    // u8 [rows, row_bytes]: each row a packed little-endian bit stream
  TensorData scales;   // f32 [1, 1], [rows, 1] or [rows, groups]; absent for an unscaled table
  TensorData offsets;  // zero_point: u8 like scales; min: f32 like scales; else absent
  TensorData table;    // lookup: f32 [1, 2^bits] (per tensor) or [rows, 2^bits] (per channel)

  int64_t row_bytes() const { return (cols * scheme.bits + 7) / 8; }
  int64_t groups_per_row() const;
  // The code of element (r, c).
  int code(int64_t r, int64_t c) const;
};

struct KMeansOptions {
  int iterations = 25;
  bool magnitude_weighted = false;  // weight each value by |w| (favours large weights)
  uint64_t seed = 1;
};

// Quantizes a float (f32, f16, bf16) weight [N, K] with an affine scheme: min-max for `min`
// and `zero_point` offsets, symmetric (scale = max|w| / (2^(bits-1) - 1)) for `midpoint`.
QuantizedTensor quantize_affine(const TensorData& weight, const QuantScheme& scheme);
// A lookup table of 2^bits entries by k-means (k-means++ start) per tensor or per channel.
QuantizedTensor quantize_lookup(const TensorData& weight, int bits, Granularity granularity,
                                const KMeansOptions& options = {});
// The f32 [N, K] values a quantized tensor stands for.
TensorData dequantize(const QuantizedTensor& q);

struct ReconstructionError {
  double relative_rms = 0;  // ||w - w'|| / ||w||
  double max_abs = 0;       // max |w - w'|
};
ReconstructionError reconstruction_error(const TensorData& original, const TensorData& restored);

// y[M, N] = x[M, K] · W^T for W [N, K] stored as GGUF blocks of `ggml_type` (rows of whole
// blocks, one after the other). x is f32, f16 or bf16 (converted to f32); y is f32.
// The quantized formats (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL, Q4_K, Q5_K, Q6_K) quantize x
// to int8 per block of 32 (as llama.cpp does: d = max|x| / 127) and use integer dot products
// (AVX2 when the CPU has it); F16 and BF16, and every format with quantize_activations off,
// expand each weight row to floats. OpenMP over N.
// Throws loom::Error for an unknown type or bad sizes.
struct GemmOptions {
  bool quantize_activations = true;  // false: float dot products for every format
  bool allow_avx2 = true;            // false: the portable path (tests compare the two)
};
void ggml_matmul(uint32_t ggml_type, const void* weight_blocks, int64_t weight_bytes, int64_t n,
                 int64_t k, const void* x, DType x_dtype, int64_t m, float* y,
                 const GemmOptions& options = {});
// The same for a QuantizedTensor (float dot products over expanded rows).
void quantized_matmul(const QuantizedTensor& w, const float* x, int64_t m, float* y);

// Expands `count` blocks of 32 (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL) in device memory into
// count * 32 floats, on `stream`.
void cuda_ggml_dequantize(uint32_t ggml_type, const void* blocks, int64_t count, float* out,
                          void* stream);
// The same into f32, f16 or bf16 (`out_dtype`), rounding to nearest even.
void cuda_ggml_dequantize(uint32_t ggml_type, const void* blocks, int64_t count, void* out,
                          DType out_dtype, void* stream);

// The CUDA GEMV (CUDA builds only): the same product for M <= 8 on GGUF formats with blocks of
// 32 (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL); weight, x and y in device memory; f32
// accumulation without activation quantization. `stream` is a cudaStream_t (null: the
// per-thread default stream); the call returns once the kernel is queued.
// Optional edges (device pointers, null when absent): norm_weight [K] in x's dtype makes x
// rms_norm(x, norm_weight, norm_eps) first; gate_blocks (same format and shape as the weight)
// makes y = silu(x Gᵀ) * (x Wᵀ); residual (f32, y's shape) is added to y last.
struct GemvEdges {
  const void* norm_weight = nullptr;
  float norm_eps = 0.f;
  const float* residual = nullptr;
  const void* gate_blocks = nullptr;
  // No kernel of the run writes the weight or gate blocks: the GEMV may load them before the
  // previous kernel has finished (programmatic dependent launch on Hopper).
  bool weights_invariant = false;
};
void cuda_ggml_gemv(uint32_t ggml_type, const void* weight_blocks, int64_t weight_bytes, int64_t n,
                    int64_t k, const void* x, DType x_dtype, int64_t m, float* y,
                    void* stream = nullptr, const GemvEdges& edges = {});

// Graph ops on weights kept as GGUF blocks: `blocks` is a u8 tensor [N, row_bytes] (each row
// whole blocks of `format`, "Q4_0" ...). dequantize gives f32 [N, k]; quantized_matmul gives
// f32 [..., N] = x [..., K] · Wᵀ (x f32, f16 or bf16), on the CPU and on CUDA (formats with
// blocks of 32: a GEMV for M <= 8, else the faster of it and the weight expanded for a GEMM).
Tensor dequantize(const Tensor& blocks, const std::string& format, int64_t k);
// int8_activations: the kernels may round x. CPU: to int8 per block of 32 for integer dot
// products on Q4_0, Q4_1 and Q8_0 (fast, as llama.cpp); CUDA with M > 8 and x f32: to f16
// for a tensor-core GEMM. false: float products, exact to f32 rounding.
Tensor quantized_matmul(const Tensor& x, const Tensor& blocks, const std::string& format,
                        bool int8_activations = true);

// Whether this CPU runs the AVX2+FMA path.
bool cpu_has_avx2();

}  // namespace loom::quant
