// The loop every elementwise CPU kernel shares. The output's index space is walked in
// runs that are contiguous in the output; each operand is addressed by its own strides,
// 0 on the dims it broadcasts along, so broadcasting costs no copies.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>

#include "backends/backend.h"
#include "backends/cpu/dispatch.h"
#include "backends/cpu/half_convert.h"

namespace loom::cpu {

// The output's extents with size-one dims dropped and dims merged wherever every operand
// steps through them as one, and each operand's strides over those extents. Merging turns
// the common cases (same shape, a scalar, a row vector) into one or two dims.
template <size_t N>
struct BroadcastLayout {
  Extents shape;
  std::array<Strides, N> strides;
};

template <size_t N>
BroadcastLayout<N> broadcast_layout(const Extents& out_shape,
                                    const std::array<const TensorView*, N>& operands) {
  const size_t rank = out_shape.size();
  std::array<Strides, N> aligned;
  for (size_t k = 0; k < N; ++k) {
    const TensorView& v = *operands[k];
    const Strides strides = v.strides.empty() ? contiguous_strides(v.shape) : v.strides;
    // Inference guarantees these; checking keeps a malformed plan from reading out of bounds.
    if (v.shape.size() > rank || strides.size() != v.shape.size())
      fail(ErrorKind::internal, "elementwise operand of rank " + std::to_string(v.shape.size()) +
                                    " does not broadcast to " + to_string(out_shape));
    aligned[k].assign(rank, 0);
    const size_t lead = rank - v.shape.size();
    for (size_t j = 0; j < v.shape.size(); ++j) {
      if (v.shape[j] != out_shape[lead + j] && v.shape[j] != 1)
        fail(ErrorKind::internal, "elementwise operand " + to_string(v.shape) +
                                      " does not broadcast to " + to_string(out_shape));
      aligned[k][lead + j] = v.shape[j] == 1 ? 0 : strides[j];
    }
  }

  BroadcastLayout<N> layout;
  for (size_t d = 0; d < rank; ++d) {
    if (out_shape[d] == 1) continue;
    bool mergeable = !layout.shape.empty();
    for (size_t k = 0; k < N && mergeable; ++k)
      mergeable = layout.strides[k].back() == aligned[k][d] * out_shape[d];
    if (mergeable) {
      layout.shape.back() *= out_shape[d];
      for (size_t k = 0; k < N; ++k) layout.strides[k].back() = aligned[k][d];
    } else {
      layout.shape.push_back(out_shape[d]);
      for (size_t k = 0; k < N; ++k) layout.strides[k].push_back(aligned[k][d]);
    }
  }
  if (layout.shape.empty()) {  // a scalar, or every dim of size one
    layout.shape.push_back(1);
    for (size_t k = 0; k < N; ++k) layout.strides[k].push_back(0);
  }
  return layout;
}

// The layout kept in a kernel's per-node state, with the views it was built for.
template <size_t N>
struct CachedBroadcastLayout {
  Extents out_shape;
  std::array<Extents, N> shapes;
  std::array<Strides, N> strides;
  BroadcastLayout<N> layout;

  bool built_for(const Extents& out, const std::array<const TensorView*, N>& operands) const {
    if (out != out_shape) return false;
    for (size_t k = 0; k < N; ++k)
      if (operands[k]->shape != shapes[k] || operands[k]->strides != strides[k]) return false;
    return true;
  }
};

// The operands' layout, built on a node's first run and kept in the kernel's per-node state,
// so that a steady-state run allocates nothing (comparing the views allocates nothing
// either). Without a state (constant folding, direct calls) it is built in `scratch`.
// Returns a pointer, not a reference: GCC 14 warns (-Wdangling-reference) when a reference
// returned by a call with a temporary argument is bound to a local.
template <size_t N>
const BroadcastLayout<N>* cached_broadcast_layout(KernelContext& ctx, const Extents& out_shape,
                                                  const std::array<const TensorView*, N>& operands,
                                                  BroadcastLayout<N>& scratch) {
  if (ctx.state == nullptr) {
    scratch = broadcast_layout<N>(out_shape, operands);
    return &scratch;
  }
  // Only this node's kernel writes its state, so the stored type is known.
  auto* cached = static_cast<CachedBroadcastLayout<N>*>(ctx.state->get());
  if (cached == nullptr || !cached->built_for(out_shape, operands)) {
    auto fresh = std::make_shared<CachedBroadcastLayout<N>>();
    fresh->out_shape = out_shape;
    for (size_t k = 0; k < N; ++k) {
      fresh->shapes[k] = operands[k]->shape;
      fresh->strides[k] = operands[k]->strides;
    }
    fresh->layout = broadcast_layout<N>(out_shape, operands);
    cached = fresh.get();
    *ctx.state = std::move(fresh);
  }
  return &cached->layout;
}

// Calls run(out_begin, offsets, inner_strides, count) for runs of `count` output elements
// starting at flat index out_begin; operand k's elements are at offsets[k] + j *
// inner_strides[k]. Large outputs are split into chunks run on OpenMP threads.
template <size_t N, class Run>
void for_each_run(const BroadcastLayout<N>& layout, int64_t total, Run&& run) {
  constexpr int64_t kChunk = 8192;
  if (total <= 0) return;
  const int rank = int(layout.shape.size());
  const int64_t inner = layout.shape.back();
  std::array<int64_t, N> inner_strides;
  for (size_t k = 0; k < N; ++k) inner_strides[k] = layout.strides[k].back();
  const int64_t chunks = (total + kChunk - 1) / kChunk;
  parallel_for(chunks, std::max<int64_t>(1, kParallelGrain / kChunk), [&](int64_t chunk) {
    const int64_t end = std::min(total, (chunk + 1) * kChunk);
    for (int64_t pos = chunk * kChunk; pos < end;) {
      const int64_t col = pos % inner;
      const int64_t count = std::min(inner - col, end - pos);
      std::array<int64_t, N> offsets;
      for (size_t k = 0; k < N; ++k) offsets[k] = col * inner_strides[k];
      int64_t row = pos / inner;
      for (int d = rank - 2; d >= 0 && row > 0; --d) {
        const int64_t i = row % layout.shape[size_t(d)];
        row /= layout.shape[size_t(d)];
        for (size_t k = 0; k < N; ++k) offsets[k] += i * layout.strides[k][size_t(d)];
      }
      run(pos, offsets, inner_strides, count);
      pos += count;
    }
  });
}

// Like load(), but reads bool storage as a byte so that a stray value other than 0 or 1
// in user data means true instead of undefined behaviour.
template <class T>
inline compute_t<T> load_element(const T* p) {
  if constexpr (std::is_same_v<T, bool>) {
    return *reinterpret_cast<const uint8_t*>(p) != 0;
  } else {
    return load(p);
  }
}

// f16 and bf16 runs are converted to float this many elements at a time (stack buffers).
inline constexpr int64_t kHalfBlock = 256;

// Reads n elements of a 16-bit float operand, `stride` apart, as floats.
template <class T>
void load_half_block(const T* p, int64_t stride, int64_t n, float* out) {
  if (stride == 1) {
    convert_to_float(p, out, n);
  } else if (stride == 0) {
    std::fill_n(out, n, load(p));
  } else {
    for (int64_t j = 0; j < n; ++j) out[j] = load(p + j * stride);
  }
}

}  // namespace loom::cpu
