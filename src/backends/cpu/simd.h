// Run-time choice of the CPU's vector instructions for the elementwise and reduction
// kernels. The build targets x86-64-v2 (SSE4.2); AVX2 (+FMA, F16C) and AVX-512 (F, BW, VL)
// kernels are compiled with __attribute__((target(...))) and chosen per call from what the
// CPU supports, capped by the environment variable LOOM_CPU_SIMD (portable, avx2, avx512)
// and by set_simd_level_for_testing. Every kernel here computes the same result on every
// level: the vector paths do the same IEEE operations in the same order as the portable
// loops (simd_gemv excepted: it fuses multiply-adds where the portable BLAS call may not).
#pragma once

#include <cstdint>
#include <optional>

#include "backends/cpu/dispatch.h"

namespace loom::cpu {

enum class SimdLevel { portable = 0, avx2 = 1, avx512 = 2 };

const char* simd_level_name(SimdLevel level);
// The level kernels use now: the CPU's best, capped by LOOM_CPU_SIMD (read once) and by a
// test's override.
SimdLevel simd_level();
// The level the CPU supports, ignoring caps.
SimdLevel cpu_simd_level();
// Tests: caps the level (std::nullopt removes the cap). Not thread-safe against runs.
void set_simd_level_for_testing(std::optional<SimdLevel> cap);

enum class SimdBinary { add, sub, mul, div };

// y[i] = a[i * sa] op b[i * sb] for i < n, with sa and sb each 0 (a broadcast scalar) or 1.
// Returns false, doing nothing, when no vector level is available (the caller runs its
// portable loop). f16 and bf16 compute in f32 and round to nearest even, like store().
bool simd_binary(SimdBinary op, const float* a, int64_t sa, const float* b, int64_t sb, float* y,
                 int64_t n);
bool simd_binary(SimdBinary op, const f16_t* a, int64_t sa, const f16_t* b, int64_t sb, f16_t* y,
                 int64_t n);
bool simd_binary(SimdBinary op, const bf16_t* a, int64_t sa, const bf16_t* b, int64_t sb, bf16_t* y,
                 int64_t n);

// y[i] = exp(x[i * sx]) for i < n: one branch-free formula within about 2 ulp of exp
// (simd.cpp, exp_kernel.inc), the same bits on every level; contiguous runs (sx = 1) are
// vectorised. f16 and bf16 compute in f32.
void simd_exp(const float* x, int64_t sx, float* y, int64_t n);
void simd_exp(const f16_t* x, int64_t sx, f16_t* y, int64_t n);
void simd_exp(const bf16_t* x, int64_t sx, bf16_t* y, int64_t n);

// y[j] = sum_k x[k] * b[k * ldb + j] for j < n (a [1, K] x [K, N] product, B row-major):
// column blocks on threads, each column's k in order with fused multiply-adds (the same bits
// on AVX2 and AVX-512, and with any thread count). Returns false, doing nothing, without a
// vector level (the caller uses BLAS).
bool simd_gemv(const float* x, const float* b, int64_t ldb, int64_t k, int64_t n, float* y);

// The sum of n contiguous floats, accumulated in double in 16 lanes (element i into lane
// i % 16; the lanes are then added in a fixed tree, then the n % 16 tail one at a time).
// Every level, the portable loop included, adds in this order, so the result does not
// depend on the CPU; it differs from a one-at-a-time double sum only by double rounding.
double sum_f32(const float* x, int64_t n);

}  // namespace loom::cpu
