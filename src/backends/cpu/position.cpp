// CPU kernels of the position ops: arange and rope.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "backends/cpu/convert.h"
#include "backends/cpu/cpu_kernels.h"
#include "backends/cpu/dispatch.h"
#include "ops/position_params.h"

namespace loom::cpu {

namespace {

void run_arange(KernelContext&, const ir::Node& node, std::span<const TensorView>,
                std::span<TensorView> out) {
  const auto [start, stop, step, dtype] = ops::ArangeParams::decode(node);
  TensorView& y = out[0];
  int64_t n = y.numel();
  dispatch_all(y.dtype, [&](auto tag) {
    using T = decltype(tag);
    T* p = y.as<T>();
    parallel_for(n, kParallelGrain, [&](int64_t i) {
      store(p + i, convert<compute_t<T>>(start + double(i) * step));  // saturates like cast
    });
  });
}

// Rotation pairs are handled in chunks whose angles live on the stack: each angle is
// computed once per position and reused for every row (batch, head) at that position.
constexpr int64_t kPairChunk = 64;

template <class T>
void rope_rows(const TensorView& x, TensorView& y, int64_t offset, double base, double scale,
               int64_t dims, bool interleaved) {
  int64_t features = x.shape.back();
  int64_t positions = x.shape[size_t(x.rank() - 2)];
  int64_t batch = positions == 0 || features == 0 ? 0 : x.numel() / (positions * features);
  int64_t half = dims / 2;
  const T* in = x.as<const T>();
  T* out = y.as<T>();
  double log_base = std::log(base);
  // Work per position is batch * features elements.
  int64_t grain = std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(1, batch * features));
  parallel_for(positions, grain, [&](int64_t s) {
    const double position = scalar::rope_position(offset, s, scale);
    float cos_chunk[kPairChunk], sin_chunk[kPairChunk];
    for (int64_t i0 = 0; i0 < half; i0 += kPairChunk) {
      int64_t count = std::min(kPairChunk, half - i0);
      for (int64_t k = 0; k < count; ++k) {
        const double theta = scalar::rope_angle(position, i0 + k, dims, log_base);
        cos_chunk[k] = float(std::cos(theta));
        sin_chunk[k] = float(std::sin(theta));
      }
      for (int64_t b = 0; b < batch; ++b) {
        int64_t row = (b * positions + s) * features;
        for (int64_t k = 0; k < count; ++k) {
          int64_t i = i0 + k;
          int64_t first = row + (interleaved ? 2 * i : i);
          int64_t second = row + (interleaved ? 2 * i + 1 : i + half);
          float x0 = float(load(in + first)), x1 = float(load(in + second));
          store(out + first, x0 * cos_chunk[k] - x1 * sin_chunk[k]);
          store(out + second, x0 * sin_chunk[k] + x1 * cos_chunk[k]);
        }
      }
    }
    // Features past `dims` pass through.
    if (dims < features && out != in) {
      for (int64_t b = 0; b < batch; ++b) {
        int64_t row = (b * positions + s) * features;
        std::memcpy(out + row + dims, in + row + dims, size_t(features - dims) * sizeof(T));
      }
    }
  });
}

void run_rope(KernelContext&, const ir::Node& node, std::span<const TensorView> in,
              std::span<TensorView> out) {
  const TensorView& x = in[0];
  int64_t offset = load_index(in[1].data, in[1].dtype, 0);
  const ops::RopeParams p = ops::RopeParams::decode(node);
  const double base = p.base, scale = p.scale;
  const int64_t dims = p.rotated(x.shape.back());
  const bool interleaved = p.interleaved;
  dispatch_float(x.dtype, [&](auto tag) {
    rope_rows<decltype(tag)>(x, out[0], offset, base, scale, dims, interleaved);
  });
}

}  // namespace

void rope_in_place(TensorView& x, int64_t offset, const ops::RopeParams& p) {
  dispatch_float(x.dtype, [&](auto tag) {
    rope_rows<decltype(tag)>(x, x, offset, p.base, p.scale, p.rotated(x.shape.back()),
                             p.interleaved);
  });
}

void register_position_kernels(Backend& b) {
  b.add_kernel("arange", Kernel{"cpu.arange", run_arange, nullptr});
  b.add_kernel("rope", Kernel{"cpu.rope", run_rope, nullptr});
}

}  // namespace loom::cpu
