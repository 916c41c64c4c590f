// CPU kernels of frames (overlapping windows of the last axis, with constant or reflect
// padding) and overlap_add (its adjoint: frames summed back into a signal).
#include <cstring>
#include <type_traits>

#include "backends/backend.h"
#include "backends/cpu/dispatch.h"
#include "ops/fft_params.h"

namespace loom::cpu {

namespace {

// `window` (f32 only, or null) multiplies each frame as it is written.
template <class T>
void copy_frames(const T* x, T* y, int64_t rows, int64_t t, int64_t frames,
                 const ops::FramesParams& p, const float* window) {
  const int64_t length = p.frame_length;
  parallel_for(rows * frames, std::max<int64_t>(1, kParallelGrain / length), [&](int64_t rf) {
    const int64_t r = rf / frames, f = rf % frames;
    const T* src = x + r * t;
    T* dst = y + rf * length;
    const int64_t start = f * p.hop;
    // The part inside the signal is one memcpy; the padded edges go sample by sample.
    int64_t k = 0;
    for (; k < length && start + k < p.pad; ++k) {
      const int64_t s = p.source(start + k, t);
      dst[k] = s < 0 ? T{} : src[s];
    }
    const int64_t inside_end = std::min(length, p.pad + t - start);
    if (inside_end > k) {
      std::memcpy(dst + k, src + (start + k - p.pad), size_t(inside_end - k) * sizeof(T));
      k = inside_end;
    }
    for (; k < length; ++k) {
      const int64_t s = p.source(start + k, t);
      dst[k] = s < 0 ? T{} : src[s];
    }
    if constexpr (std::is_same_v<T, float>)
      if (window)
        for (k = 0; k < length; ++k) dst[k] *= window[k];
  });
}

void run_frames(KernelContext&, const ir::Node& node, std::span<const TensorView> in,
                std::span<TensorView> out) {
  const TensorView& x = in[0];
  TensorView& y = out[0];
  if (y.numel() == 0) return;
  const ops::FramesParams p = ops::FramesParams::decode(node);
  const int64_t t = x.shape.back();
  const int64_t frames = y.shape[y.shape.size() - 2];
  const int64_t rows = y.numel() / (frames * p.frame_length);
  if (x.dtype == DType::c64)
    copy_frames(x.as<const uint64_t>(), y.as<uint64_t>(), rows, t, frames, p, nullptr);
  else
    copy_frames(x.as<const float>(), y.as<float>(), rows, t, frames, p,
                in.size() > 1 ? in[1].as<const float>() : nullptr);
}

// Each output sample gathers the frames that cover it, so rows run in parallel without
// write conflicts and the sum's order is fixed (frame order).
void run_overlap_add(KernelContext&, const ir::Node& node, std::span<const TensorView> in,
                     std::span<TensorView> out) {
  const TensorView& x = in[0];
  TensorView& y = out[0];
  if (y.numel() == 0) return;
  const int64_t hop = node.attrs.get<int64_t>("hop");
  const int64_t frames = x.shape[x.shape.size() - 2], length = x.shape.back();
  const int64_t t = y.shape.back();
  const int64_t rows = y.numel() / t;
  const float* xp = x.as<const float>();
  float* yp = y.as<float>();
  parallel_for(rows, std::max<int64_t>(1, kParallelGrain / t), [&](int64_t r) {
    const float* src = xp + r * frames * length;
    float* dst = yp + r * t;
    for (int64_t i = 0; i < t; ++i) {
      // Frames f with f * hop <= i < f * hop + length.
      const int64_t last = std::min(frames - 1, i / hop);
      const int64_t first = i >= length ? (i - length) / hop + 1 : 0;
      float sum = 0.f;
      for (int64_t f = first; f <= last; ++f) sum += src[f * length + (i - f * hop)];
      dst[i] = sum;
    }
  });
}

}  // namespace

void register_frames_kernels(Backend& b) {
  b.add_kernel("frames", Kernel{"cpu.frames", run_frames});
  b.add_kernel("overlap_add", Kernel{"cpu.overlap_add", run_overlap_add});
}

}  // namespace loom::cpu
