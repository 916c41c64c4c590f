// CPU Fourier transforms through KissFFT (Debian libkissfft-dev, float). A transform over
// several axes is a sequence of one-axis passes; each pass runs the axis's lines on OpenMP
// threads, gathering a strided line into a per-thread buffer. KissFFT's plans (twiddles and
// factors) and the per-thread buffers are built on a node's first run and kept in its kernel
// state, so a steady-state run allocates nothing. A complex plan is read-only while it
// transforms out of place, so threads share it; a real plan has a scratch buffer of its own
// (kiss_fftr's tmpbuf), so each thread gets one.
// KissFFT's real transform needs an even length; odd real lengths go through the complex one.
#include <kiss_fft.h>
#include <kiss_fftr.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <vector>

#include "backends/cpu/cpu_kernels.h"
#include "backends/cpu/dispatch.h"
#include "backends/strided_views.h"
#include "ops/fft_params.h"

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace loom::cpu {

namespace {

using cpx = kiss_fft_cpx;
static_assert(sizeof(cpx) == 8, "KissFFT's complex must be complex64's layout");

struct KissPlan {
  kiss_fft_cfg complex_cfg = nullptr;
  kiss_fftr_cfg real_cfg = nullptr;  // even real lengths only
  ~KissPlan() {
    kiss_fft_free(complex_cfg);
    kiss_fft_free(real_cfg);
  }
};

int thread_count() {
#if defined(_OPENMP)
  return omp_get_max_threads();
#else
  return 1;
#endif
}

int thread_index() {
#if defined(_OPENMP)
  return omp_get_thread_num();
#else
  return 0;
#endif
}

// Everything a node's transform needs, for one set of extents.
struct FftState {
  Extents in_shape, out_shape;
  // (length, inverse, real, thread: real plans only) -> plan
  std::map<std::tuple<int64_t, bool, bool, int>, std::unique_ptr<KissPlan>> plans;
  std::vector<std::vector<cpx>> line_in, line_out;  // per thread, the longest line
  std::vector<cpx> spectrum;  // irfft over several axes: the complex passes' copy

  int threads() const { return int(line_in.size()); }

  // One plan per thread for real transforms, the shared one for complex ones.
  std::vector<KissPlan*> thread_plans(int64_t n, bool inverse, bool real) {
    std::vector<KissPlan*> out;
    for (int t = 0; t < threads(); ++t) out.push_back(&plan(n, inverse, real, t));
    return out;
  }

  // Called outside parallel regions only (the map is not locked).
  KissPlan& plan(int64_t n, bool inverse, bool real, int thread = 0) {
    auto& p = plans[{n, inverse, real, real ? thread : 0}];
    if (!p) {
      p = std::make_unique<KissPlan>();
      if (real)
        p->real_cfg = kiss_fftr_alloc(int(n), inverse, nullptr, nullptr);
      else
        p->complex_cfg = kiss_fft_alloc(int(n), inverse, nullptr, nullptr);
      if (!p->real_cfg && !p->complex_cfg)
        fail(ErrorKind::device, "KissFFT could not allocate a plan of length " + std::to_string(n));
    }
    return *p;
  }
};

// The lines of `axis` in a contiguous tensor of `shape`: line l starts at base(l) and steps by
// `stride` elements.
struct Lines {
  int64_t count, length, stride;
  Lines(const Extents& shape, int axis) {
    length = shape[size_t(axis)];
    stride = 1;
    for (size_t d = size_t(axis) + 1; d < shape.size(); ++d) stride *= shape[d];
    count = length == 0 ? 0 : numel(shape) / length;
  }
  int64_t base(int64_t line) const { return (line / stride) * length * stride + line % stride; }
};

// The lines of `axis` in a view with any strides (rfft reading frames that overlap in the
// signal's bytes): line l is the l-th index, row-major, over the other axes.
struct StridedLines {
  int64_t count, length, stride;
  Extents outer;  // the other axes' extents and strides, innermost last
  Strides outer_strides;
  StridedLines(const Extents& shape, const Strides& strides, int axis) {
    length = shape[size_t(axis)];
    stride = strides[size_t(axis)];
    for (size_t d = 0; d < shape.size(); ++d)
      if (int(d) != axis) {
        outer.push_back(shape[d]);
        outer_strides.push_back(strides[d]);
      }
    count = length == 0 ? 0 : numel(shape) / length;
  }
  int64_t base(int64_t line) const {
    int64_t at = 0;
    for (size_t d = outer.size(); d-- > 0;) {
      at += (line % outer[d]) * outer_strides[d];
      line /= outer[d];
    }
    return at;
  }
};

// Runs fn(line, thread) over the lines on at most `threads` threads (the per-thread buffers
// made with the state), when there is enough work for more than one.
template <class Fn>
void parallel_lines(int64_t count, int64_t length, int threads, Fn&& fn) {
  const int64_t grain = std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(length, 1));
#if defined(_OPENMP)
  if (count >= 2 * grain && threads > 1) {
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t l = 0; l < count; ++l) fn(l, thread_index());
    return;
  }
#endif
  (void)grain;
  (void)threads;
  for (int64_t l = 0; l < count; ++l) fn(l, 0);
}

// In place: the complex transform of every line of `axis` of data [shape].
void complex_pass(FftState& st, cpx* data, const Extents& shape, int axis, bool inverse) {
  Lines lines(shape, axis);
  if (lines.length <= 1) return;
  kiss_fft_cfg cfg = st.plan(lines.length, inverse, false).complex_cfg;
  parallel_lines(lines.count, lines.length, st.threads(), [&](int64_t l, int t) {
    cpx* line = data + lines.base(l);
    cpx* in = st.line_in[size_t(t)].data();
    cpx* out = st.line_out[size_t(t)].data();
    if (lines.stride == 1) {
      kiss_fft(cfg, line, out);
      std::memcpy(line, out, size_t(lines.length) * sizeof(cpx));
      return;
    }
    for (int64_t k = 0; k < lines.length; ++k) in[k] = line[k * lines.stride];
    kiss_fft(cfg, in, out);
    for (int64_t k = 0; k < lines.length; ++k) line[k * lines.stride] = out[k];
  });
}

// Real lines of `axis` in x (`src`: Lines of a contiguous x, StridedLines of a view) to
// their half spectra in y [out_shape].
template <class SrcLines>
void real_forward_pass(FftState& st, const float* x, const SrcLines& src, cpx* y,
                       const Extents& out_shape, int axis) {
  Lines dst(out_shape, axis);
  const int64_t n = src.length, m = dst.length;
  if (n == 1) {  // KissFFT wants a length of at least 2
    for (int64_t l = 0; l < src.count; ++l) y[dst.base(l)] = {x[src.base(l)], 0.f};
    return;
  }
  const bool even = n % 2 == 0;
  const std::vector<KissPlan*> plans = st.thread_plans(n, false, even);
  parallel_lines(src.count, n, st.threads(), [&](int64_t l, int t) {
    const KissPlan& plan = *plans[size_t(t)];
    const float* line = x + src.base(l);
    cpx* in = st.line_in[size_t(t)].data();
    cpx* out = st.line_out[size_t(t)].data();
    float* real_in = reinterpret_cast<float*>(in);
    if (even && src.stride == 1 && dst.stride == 1) {   // contiguous lines (the STFT's frames):
      kiss_fftr(plan.real_cfg, line, y + dst.base(l));  // no copies through the line buffers
      return;
    }
    if (even) {
      for (int64_t k = 0; k < n; ++k) real_in[k] = line[k * src.stride];
      kiss_fftr(plan.real_cfg, real_in, out);
    } else {
      for (int64_t k = 0; k < n; ++k) in[k] = {line[k * src.stride], 0.f};
      kiss_fft(plan.complex_cfg, in, out);
    }
    cpx* dst_line = y + dst.base(l);
    for (int64_t k = 0; k < m; ++k) dst_line[k * dst.stride] = out[k];
  });
}

// Half spectra of `axis` in x [in_shape] (m frequencies; those past n/2 + 1 are ignored and
// missing ones are zero) to real lines of n samples in y [out_shape].
void real_inverse_pass(FftState& st, const cpx* x, const Extents& in_shape, float* y,
                       const Extents& out_shape, int axis) {
  Lines src(in_shape, axis), dst(out_shape, axis);
  const int64_t m = src.length, n = dst.length, half = n / 2 + 1;
  const int64_t used = std::min(m, half);
  if (n == 1) {
    for (int64_t l = 0; l < dst.count; ++l) y[dst.base(l)] = x[src.base(l)].r;
    return;
  }
  const bool even = n % 2 == 0;
  const std::vector<KissPlan*> plans = st.thread_plans(n, true, even);
  parallel_lines(dst.count, n, st.threads(), [&](int64_t l, int t) {
    const KissPlan& plan = *plans[size_t(t)];
    const cpx* line = x + src.base(l);
    cpx* in = st.line_in[size_t(t)].data();
    cpx* out = st.line_out[size_t(t)].data();
    for (int64_t k = 0; k < used; ++k) in[k] = line[k * src.stride];
    for (int64_t k = used; k < half; ++k) in[k] = {0.f, 0.f};
    float* dst_line = y + dst.base(l);
    if (even) {
      float* real_out = reinterpret_cast<float*>(out);
      kiss_fftri(plan.real_cfg, in, real_out);
      for (int64_t k = 0; k < n; ++k) dst_line[k * dst.stride] = real_out[k];
    } else {
      // The full Hermitian spectrum; the zero frequency's imaginary part drops out of the
      // real part taken below, as numpy ignores it.
      for (int64_t k = 1; k < half; ++k) in[n - k] = {in[k].r, -in[k].i};
      kiss_fft(plan.complex_cfg, in, out);
      for (int64_t k = 0; k < n; ++k) dst_line[k * dst.stride] = out[k].r;
    }
  });
}

void scale_values(float* data, int64_t count, double scale) {
  if (scale == 1.0) return;
  const float s = float(scale);
  parallel_for(count, kParallelGrain, [&](int64_t i) { data[i] *= s; });
}

FftState& state_for(KernelContext& ctx, std::unique_ptr<FftState>& local, const TensorView& x,
                    const TensorView& y, size_t spectrum_elements) {
  FftState* st = nullptr;
  if (ctx.state) {
    st = static_cast<FftState*>(ctx.state->get());
    if (st && (st->in_shape != x.shape || st->out_shape != y.shape)) st = nullptr;
  }
  if (!st) {
    auto fresh = std::make_shared<FftState>();
    fresh->in_shape = x.shape;
    fresh->out_shape = y.shape;
    int64_t longest = 1;
    for (int64_t d : x.shape) longest = std::max(longest, d);
    for (int64_t d : y.shape) longest = std::max(longest, d);
    fresh->line_in.assign(size_t(thread_count()), std::vector<cpx>(size_t(longest)));
    fresh->line_out.assign(size_t(thread_count()), std::vector<cpx>(size_t(longest)));
    fresh->spectrum.resize(spectrum_elements);
    st = fresh.get();
    if (ctx.state)
      *ctx.state = std::move(fresh);
    else
      local.reset(new FftState(std::move(*fresh)));
    if (!ctx.state) st = local.get();
  }
  return *st;
}

void run_fft(KernelContext& ctx, const ir::Node& node, std::span<const TensorView> in,
             std::span<TensorView> out) {
  const TensorView& x = in[0];
  TensorView& y = out[0];
  if (y.numel() == 0) return;
  const ops::FftParams p = ops::FftParams::decode(node, x.rank());
  const int real_axis = p.axes.back();
  // irfft over several axes transforms a copy of its input, cropped or zero-padded to the
  // n/2 + 1 frequencies it uses, along the other axes first.
  Extents spectrum_shape = x.shape;
  size_t spectrum_elements = 0;
  if (p.kind == ops::FftKind::real_inverse && p.axes.size() > 1) {
    spectrum_shape[size_t(real_axis)] = y.shape[size_t(real_axis)] / 2 + 1;
    spectrum_elements = size_t(numel(spectrum_shape));
  }
  std::unique_ptr<FftState> local;
  FftState& st = state_for(ctx, local, x, y, spectrum_elements);
  int64_t points = 1;
  for (int a : p.axes) points *= (p.kind == ops::FftKind::real_forward ? x : y).shape[size_t(a)];
  const double scale = p.scale(points);

  switch (p.kind) {
    case ops::FftKind::forward:
    case ops::FftKind::inverse: {
      cpx* data = y.as<cpx>();
      if (y.data != x.data) std::memcpy(y.data, x.data, x.nbytes());
      for (int a : p.axes) complex_pass(st, data, y.shape, a, p.inverse());
      scale_values(y.as<float>(), 2 * y.numel(), scale);
      break;
    }
    case ops::FftKind::real_forward: {
      if (is_contiguous(x))
        real_forward_pass(st, x.as<const float>(), Lines(x.shape, real_axis), y.as<cpx>(), y.shape,
                          real_axis);
      else
        real_forward_pass(st, x.as<const float>(), StridedLines(x.shape, x.strides, real_axis),
                          y.as<cpx>(), y.shape, real_axis);
      for (int a : p.axes)
        if (a != real_axis) complex_pass(st, y.as<cpx>(), y.shape, a, false);
      scale_values(y.as<float>(), 2 * y.numel(), scale);
      break;
    }
    case ops::FftKind::real_inverse: {
      if (p.axes.size() == 1) {
        real_inverse_pass(st, x.as<const cpx>(), x.shape, y.as<float>(), y.shape, real_axis);
      } else {
        // Copy the used frequencies, then the complex passes, then the real one.
        cpx* spec = st.spectrum.data();
        Lines src(x.shape, real_axis), dst(spectrum_shape, real_axis);
        const int64_t used = std::min(src.length, dst.length);
        const cpx* xs = x.as<const cpx>();
        parallel_lines(dst.count, dst.length, st.threads(), [&](int64_t l, int) {
          const cpx* s = xs + src.base(l);
          cpx* d = spec + dst.base(l);
          for (int64_t k = 0; k < used; ++k) d[k * dst.stride] = s[k * src.stride];
          for (int64_t k = used; k < dst.length; ++k) d[k * dst.stride] = {0.f, 0.f};
        });
        for (int a : p.axes)
          if (a != real_axis) complex_pass(st, spec, spectrum_shape, a, true);
        real_inverse_pass(st, spec, spectrum_shape, y.as<float>(), y.shape, real_axis);
      }
      scale_values(y.as<float>(), y.numel(), scale);
      break;
    }
  }
}

}  // namespace

void register_frames_kernels(Backend& b);

void register_fft_kernels(Backend& b) {
  for (const char* op : {"fft", "ifft", "irfft"})
    b.add_kernel(op, Kernel{std::string("cpu.") + op + ".kissfft", run_fft});
  // rfft reads its signal through its strides (STFT frames are a view of the signal); the
  // other transforms start from a copy of their input or read it as contiguous lines.
  b.add_kernel("rfft", Kernel{"cpu.rfft.kissfft", run_fft, nullptr, nullptr, true});
  register_frames_kernels(b);
}

}  // namespace loom::cpu
