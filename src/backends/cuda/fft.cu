// CUDA Fourier transforms through cuFFT. A node's transform is a few cuFFT plans ("steps"):
// the sorted axes are grouped into runs of neighbouring axes, each run one plan of rank 1-3
// (a real-to-complex or complex-to-real plan where the run ends with the real axis), batched
// over the dims outside the run (one execution per outer index when dims follow the run).
// The plans are made when the plan of the executable is lowered (tactics(), outside any
// capture) with automatic work-area allocation off: their work area, and for irfft a copy of
// the input (cuFFT's complex-to-real plans overwrite their input), are the node's workspace in
// the arena. So a run, captured or not, allocates nothing. Normalisation is one scale pass.
#include <cufft.h>

#include <algorithm>
#include <memory>
#include <vector>

#include "backends/cuda/cuda_backend_impl.h"
#include "backends/cuda/cuda_error.h"
#include "backends/cuda/cuda_kernels.h"
#include "backends/cuda/device/launch.cuh"
#include "backends/cuda/device_guard.h"
#include "ops/fft_params.h"

namespace loom::cuda {

void register_frames_kernels(Backend& b);

namespace {

void check_cufft(cufftResult status, const char* what) {
  if (status != CUFFT_SUCCESS)
    fail(ErrorKind::device,
         std::string("cuFFT error ") + std::to_string(int(status)) + " in " + what);
}

enum class Buffer { input, output, scratch };

struct Step {
  cufftType type;
  int direction;  // CUFFT_FORWARD or CUFFT_INVERSE (c2c only)
  Buffer source, target;
  int64_t outer;  // executions, each `in_step` / `out_step` elements further on
  int64_t in_step, out_step;
  cufftHandle handle = 0;
  size_t work_bytes = 0;
};

struct CufftPlans {
  Extents in_shape, out_shape;
  std::vector<Step> steps;
  Extents scratch_shape;  // irfft: the input cropped or zero-padded to n/2 + 1 frequencies
  int real_axis = 0;
  bool copy_input = false;      // fft / ifft with every axis of length 1
  bool widen_input = false;     // rfft of real length 1: y = (x, 0), before the steps
  bool narrow_scratch = false;  // irfft of real length 1: y = real part of the scratch, after
  // A strided real axis whose real plan would run at misaligned offsets goes through complex
  // transforms in the scratch (misaligned_real_steps): rfft widens x into it and crops the half
  // spectrum out of it; irfft extends the Hermitian half along the real axis before its last
  // (complex) pass.
  bool complex_real = false;
  int64_t real_length = 0;
  size_t scratch_bytes = 0, work_bytes = 0;
  double scale = 1.0;
  int64_t out_floats = 0;
  ~CufftPlans() {
    for (Step& s : steps)
      if (s.handle) cufftDestroy(s.handle);
  }
  size_t workspace_bytes() const { return (scratch_bytes + 255) / 256 * 256 + work_bytes; }
};

int64_t product(const Extents& shape, size_t begin, size_t end) {
  int64_t p = 1;
  for (size_t d = begin; d < end; ++d) p *= shape[d];
  return p;
}

// One plan over the neighbouring axes [first, last] of a tensor `in` -> `out` (shapes equal
// except along a real axis, the last of the run for r2c / c2r).
Step make_step(cufftType type, int direction, Buffer source, Buffer target, const Extents& in,
               const Extents& out, int first, int last) {
  Step s{type, direction, source, target, 0, 0, 0};
  const bool real_out = type == CUFFT_C2R;
  std::vector<long long> n, in_embed, out_embed;
  for (int d = first; d <= last; ++d) {
    n.push_back((real_out ? out : in)[size_t(d)]);
    in_embed.push_back(in[size_t(d)]);
    out_embed.push_back(out[size_t(d)]);
  }
  const int64_t inner = product(in, size_t(last) + 1, in.size());
  const int64_t in_block = product(in, size_t(first), size_t(last) + 1);
  const int64_t out_block = product(out, size_t(first), size_t(last) + 1);
  s.outer = product(in, 0, size_t(first));
  long long stride = 1, in_dist = in_block, out_dist = out_block, batch = s.outer;
  if (inner > 1) {  // the run's elements are `inner` apart: batch over inner, loop over outer
    stride = inner, in_dist = 1, out_dist = 1, batch = inner;
    s.in_step = in_block * inner, s.out_step = out_block * inner;
  } else {
    s.outer = 1;
  }
  check_cufft(cufftCreate(&s.handle), "cufftCreate");
  check_cufft(cufftSetAutoAllocation(s.handle, 0), "cufftSetAutoAllocation");
  check_cufft(
      cufftMakePlanMany64(s.handle, int(n.size()), n.data(), in_embed.data(), stride, in_dist,
                          out_embed.data(), stride, out_dist, type, batch, &s.work_bytes),
      "cufftMakePlanMany64");
  return s;
}

// Whether a one-axis real plan over `axis` of the real tensor `shape` would run once per outer
// index at real-data offsets that are not a multiple of two floats (dims follow the axis, dims
// precede it, and the block the loop steps over is odd).
bool misaligned_real_steps(const Extents& shape, int axis) {
  const size_t a = size_t(axis);
  const int64_t inner = product(shape, a + 1, shape.size());
  return inner > 1 && product(shape, 0, a) > 1 && (shape[a] * inner) % 2 == 1;
}

// Runs of neighbouring axes among `axes` (sorted).
std::vector<std::pair<int, int>> runs_of(std::vector<int> axes) {
  std::sort(axes.begin(), axes.end());
  std::vector<std::pair<int, int>> runs;
  for (int a : axes) {
    if (!runs.empty() && runs.back().second == a - 1)
      runs.back().second = a;
    else
      runs.push_back({a, a});
  }
  return runs;
}

std::shared_ptr<CufftPlans> make_plans(const ir::Node& node, const TensorView& x,
                                       const TensorView& y) {
  const ops::FftParams p = ops::FftParams::decode(node, x.rank());
  auto plans = std::make_shared<CufftPlans>();
  plans->in_shape = x.shape;
  plans->out_shape = y.shape;
  plans->out_floats = y.dtype == DType::c64 ? 2 * y.numel() : y.numel();
  int64_t points = 1;
  for (int a : p.axes) points *= (p.kind == ops::FftKind::real_forward ? x : y).shape[size_t(a)];
  plans->scale = p.scale(points);
  if (y.numel() == 0) return plans;
  // Axes of length 1 transform as the identity: they get no cuFFT plan (the real axis of
  // rfft / irfft at length 1 becomes a widening or narrowing copy).
  const int ra = p.axes.back();
  const int64_t real_length = (p.kind == ops::FftKind::real_forward ? x : y).shape[size_t(ra)];
  std::vector<int> axes, others;
  for (int a : p.axes) {
    if (y.shape[size_t(a)] == 1 && x.shape[size_t(a)] == 1) continue;
    axes.push_back(a);
    if (a != ra) others.push_back(a);
  }
  auto& steps = plans->steps;
  switch (p.kind) {
    case ops::FftKind::forward:
    case ops::FftKind::inverse: {
      const int dir = p.kind == ops::FftKind::forward ? CUFFT_FORWARD : CUFFT_INVERSE;
      Buffer source = Buffer::input;
      for (auto [first, last] : runs_of(axes)) {
        steps.push_back(
            make_step(CUFFT_C2C, dir, source, Buffer::output, y.shape, y.shape, first, last));
        source = Buffer::output;
      }
      plans->copy_input = steps.empty();
      break;
    }
    case ops::FftKind::real_forward: {
      if (real_length == 1) {
        plans->widen_input = true;
      } else if (misaligned_real_steps(x.shape, ra)) {
        // cuFFT rejected (error 4 at exec on an H200) a strided real-to-complex plan executed
        // once per outer index at an offset of an odd number of floats (rfft over axes (3, 1)
        // of [2, 3, 5, 7]; the same plans at even offsets pass): its real data must be aligned
        // to cufftComplex. Complex transforms of the widened signal have no such constraint.
        plans->complex_real = true;
        plans->real_axis = ra;
        plans->real_length = real_length;
        plans->scratch_shape = x.shape;
        plans->scratch_bytes = storage_bytes(DType::c64, x.numel());
        for (auto [first, last] : runs_of(axes))
          steps.push_back(make_step(CUFFT_C2C, CUFFT_FORWARD, Buffer::scratch, Buffer::scratch,
                                    x.shape, x.shape, first, last));
        break;
      } else {
        auto runs = runs_of(axes);
        if (runs.size() == 1 && runs[0].second == ra) {  // one plan over every axis
          steps.push_back(make_step(CUFFT_R2C, CUFFT_FORWARD, Buffer::input, Buffer::output,
                                    x.shape, y.shape, runs[0].first, ra));
          break;
        }
        steps.push_back(make_step(CUFFT_R2C, CUFFT_FORWARD, Buffer::input, Buffer::output, x.shape,
                                  y.shape, ra, ra));
      }
      for (auto [first, last] : runs_of(others))
        steps.push_back(make_step(CUFFT_C2C, CUFFT_FORWARD, Buffer::output, Buffer::output, y.shape,
                                  y.shape, first, last));
      break;
    }
    case ops::FftKind::real_inverse: {
      plans->real_axis = ra;
      if (real_length > 1 && misaligned_real_steps(y.shape, ra)) {
        // Misaligned strided real steps: complex transforms over y's full shape (see rfft).
        plans->complex_real = true;
        plans->real_length = real_length;
        plans->scratch_shape = y.shape;
        plans->scratch_bytes = storage_bytes(DType::c64, y.numel());
        for (auto [first, last] : runs_of(others))
          steps.push_back(make_step(CUFFT_C2C, CUFFT_INVERSE, Buffer::scratch, Buffer::scratch,
                                    y.shape, y.shape, first, last));
        steps.push_back(make_step(CUFFT_C2C, CUFFT_INVERSE, Buffer::scratch, Buffer::scratch,
                                  y.shape, y.shape, ra, ra));
        break;
      }
      plans->scratch_shape = x.shape;
      plans->scratch_shape[size_t(ra)] = y.shape[size_t(ra)] / 2 + 1;
      plans->scratch_bytes = storage_bytes(DType::c64, numel(plans->scratch_shape));
      const Extents& s = plans->scratch_shape;
      auto runs = runs_of(axes);
      if (real_length > 1 && runs.size() == 1 && runs[0].second == ra) {
        steps.push_back(make_step(CUFFT_C2R, CUFFT_INVERSE, Buffer::scratch, Buffer::output, s,
                                  y.shape, runs[0].first, ra));
        break;
      }
      for (auto [first, last] : runs_of(others))
        steps.push_back(make_step(CUFFT_C2C, CUFFT_INVERSE, Buffer::scratch, Buffer::scratch, s, s,
                                  first, last));
      if (real_length > 1)
        steps.push_back(make_step(CUFFT_C2R, CUFFT_INVERSE, Buffer::scratch, Buffer::output, s,
                                  y.shape, ra, ra));
      else
        plans->narrow_scratch = true;
      break;
    }
  }
  for (const Step& st : steps) plans->work_bytes = std::max(plans->work_bytes, st.work_bytes);
  return plans;
}

// irfft's input copied into the scratch [outer, half, inner], cropped or zero-padded along the
// real axis from [outer, m, inner].
__global__ void crop_pad_kernel(const float2* __restrict__ x, float2* __restrict__ y, int64_t total,
                                int64_t m, int64_t half, int64_t inner) {
  int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += stride) {
    int64_t in_i = i % inner, rest = i / inner;
    int64_t k = rest % half, o = rest / half;
    y[i] = k < m ? x[(o * m + k) * inner + in_i] : make_float2(0.f, 0.f);
  }
}

// irfft over a strided real axis: the rest of the full spectrum [outer, n, inner] from its
// first n/2 + 1 frequencies, X[n - k] = conj(X[k]) along the real axis (the other axes are
// already inverse-transformed, so each line along it is the spectrum of a real signal).
__global__ void hermitian_fill_kernel(float2* __restrict__ data, int64_t total, int64_t n,
                                      int64_t half, int64_t inner) {
  const int64_t upper = n - half;  // frequencies half .. n - 1
  int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += stride) {
    int64_t in_i = i % inner, rest = i / inner;
    int64_t k = half + rest % upper, o = rest / upper;
    float2 v = data[(o * n + (n - k)) * inner + in_i];
    data[(o * n + k) * inner + in_i] = make_float2(v.x, -v.y);
  }
}

__global__ void widen_kernel(const float* __restrict__ x, float2* __restrict__ y, int64_t n) {
  int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    y[i] = make_float2(x[i], 0.f);
}

__global__ void narrow_kernel(const float2* __restrict__ x, float* __restrict__ y, int64_t n) {
  int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    y[i] = x[i].x;
}

__global__ void scale_kernel(float* __restrict__ data, int64_t n, float scale) {
  int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    data[i] *= scale;
}

void exec(const Step& s, char* source, char* target, cudaStream_t stream) {
  check_cufft(cufftSetStream(s.handle, stream), "cufftSetStream");
  const size_t in_elem = s.type == CUFFT_R2C ? sizeof(float) : sizeof(float2);
  const size_t out_elem = s.type == CUFFT_C2R ? sizeof(float) : sizeof(float2);
  for (int64_t o = 0; o < s.outer; ++o) {
    void* in = source + size_t(o * s.in_step) * in_elem;
    void* out = target + size_t(o * s.out_step) * out_elem;
    switch (s.type) {
      case CUFFT_C2C:
        check_cufft(cufftExecC2C(s.handle, static_cast<cufftComplex*>(in),
                                 static_cast<cufftComplex*>(out), s.direction),
                    "cufftExecC2C");
        break;
      case CUFFT_R2C:
        check_cufft(
            cufftExecR2C(s.handle, static_cast<cufftReal*>(in), static_cast<cufftComplex*>(out)),
            "cufftExecR2C");
        break;
      default:
        check_cufft(
            cufftExecC2R(s.handle, static_cast<cufftComplex*>(in), static_cast<cufftReal*>(out)),
            "cufftExecC2R");
        break;
    }
  }
}

void run_scale(const CufftPlans& plans, TensorView& y, cudaStream_t stream) {
  if (plans.scale == 1.0) return;
  scale_kernel<<<std::min(blocks_for(plans.out_floats, kThreads), 65536u), kThreads, 0, stream>>>(
      static_cast<float*>(y.data), plans.out_floats, float(plans.scale));
  check_launch("fft (scale)");
}

// rfft / irfft over a strided real axis, through complex transforms in the scratch.
void run_complex_real(const CufftPlans& plans, const TensorView& x, TensorView& y, char* scratch,
                      char* work, cudaStream_t stream) {
  auto* full = reinterpret_cast<float2*>(scratch);
  const size_t axis = size_t(plans.real_axis);
  const int64_t n = plans.real_length, half = n / 2 + 1;
  const int64_t inner = product(plans.scratch_shape, axis + 1, plans.scratch_shape.size());
  const int64_t total = numel(plans.scratch_shape);
  const unsigned blocks = std::min(blocks_for(total, kThreads), 65536u);
  if (x.dtype == DType::f32) {  // rfft: widen, transform, crop to the half spectrum
    widen_kernel<<<blocks, kThreads, 0, stream>>>(x.as<const float>(), full, total);
    check_launch("fft (widen)");
  } else {  // irfft: the first n/2 + 1 frequencies (cropped or zero-padded), zeros after
    const int64_t m = x.shape[axis];
    crop_pad_kernel<<<blocks, kThreads, 0, stream>>>(x.as<const float2>(), full, total, m, n,
                                                     inner);
    check_launch("fft (irfft input copy)");  // frequencies past n/2 + 1: the fill replaces them
  }
  const size_t last = plans.steps.size() - (x.dtype == DType::f32 ? 0 : 1);
  for (size_t i = 0; i < plans.steps.size(); ++i) {
    const Step& s = plans.steps[i];
    if (i == last) {
      const int64_t fill = total / n * (n - half);
      if (fill > 0) {
        hermitian_fill_kernel<<<std::min(blocks_for(fill, kThreads), 65536u), kThreads, 0,
                                stream>>>(full, fill, n, half, inner);
        check_launch("fft (Hermitian fill)");
      }
    }
    check_cufft(cufftSetWorkArea(s.handle, work), "cufftSetWorkArea");
    exec(s, scratch, scratch, stream);
  }
  if (x.dtype == DType::f32) {
    const int64_t out = y.numel();
    crop_pad_kernel<<<std::min(blocks_for(out, kThreads), 65536u), kThreads, 0, stream>>>(
        full, y.as<float2>(), out, n, half, inner);
    check_launch("fft (crop)");
  } else {
    narrow_kernel<<<blocks, kThreads, 0, stream>>>(full, y.as<float>(), total);
    check_launch("fft (narrow)");
  }
  run_scale(plans, y, stream);
}

void run_plans(const CufftPlans& plans, const TensorView& x, TensorView& y, void* workspace,
               size_t workspace_bytes, cudaStream_t stream) {
  if (y.numel() == 0) return;
  if (workspace_bytes < plans.workspace_bytes())
    fail(ErrorKind::internal, "fft: workspace smaller than the cuFFT plans need");
  char* scratch = static_cast<char*>(workspace);
  char* work = scratch + (plans.scratch_bytes + 255) / 256 * 256;
  if (plans.complex_real) {
    run_complex_real(plans, x, y, scratch, work, stream);
    return;
  }
  if (plans.scratch_bytes) {
    const size_t axis = size_t(plans.real_axis);
    const int64_t m = x.shape[axis], half = plans.scratch_shape[axis];
    const int64_t inner = product(x.shape, axis + 1, x.shape.size());
    const int64_t total = numel(plans.scratch_shape);
    crop_pad_kernel<<<std::min(blocks_for(total, kThreads), 65536u), kThreads, 0, stream>>>(
        x.as<const float2>(), reinterpret_cast<float2*>(scratch), total, m, half, inner);
    check_launch("fft (irfft input copy)");
  }
  const int64_t n = y.numel();
  const unsigned blocks = std::min(blocks_for(n, kThreads), 65536u);
  if (plans.copy_input)
    check_cuda(cudaMemcpyAsync(y.data, x.data, y.nbytes(), cudaMemcpyDeviceToDevice, stream),
               "fft (copy)");
  if (plans.widen_input) {
    widen_kernel<<<blocks, kThreads, 0, stream>>>(x.as<const float>(), y.as<float2>(), n);
    check_launch("fft (widen)");
  }
  for (const Step& s : plans.steps) {
    check_cufft(cufftSetWorkArea(s.handle, work), "cufftSetWorkArea");
    auto buffer = [&](Buffer b) -> char* {
      return b == Buffer::input    ? static_cast<char*>(x.data)
             : b == Buffer::output ? static_cast<char*>(y.data)
                                   : scratch;
    };
    exec(s, buffer(s.source), buffer(s.target), stream);
  }
  if (plans.narrow_scratch) {
    narrow_kernel<<<blocks, kThreads, 0, stream>>>(reinterpret_cast<const float2*>(scratch),
                                                   y.as<float>(), n);
    check_launch("fft (narrow)");
  }
  run_scale(plans, y, stream);
}

void run_fft(KernelContext& ctx, const ir::Node& node, std::span<const TensorView> in,
             std::span<TensorView> out) {
  const TensorView& x = in[0];
  TensorView& y = out[0];
  if (y.numel() == 0) return;
  cudaStream_t stream = stream_of(ctx);
  if (ctx.tactic && ctx.tactic->data) {
    // Planned: the cuFFT plans were made with the executable's plan; the work area is in the
    // arena.
    const auto& plans = *static_cast<const CufftPlans*>(ctx.tactic->data.get());
    run_plans(plans, x, y, ctx.workspace, ctx.workspace_bytes, stream);
    return;
  }
  // Outside a plan (one node evaluated on its own): plans kept in the node's state, the
  // stream's workspace as work area.
  std::shared_ptr<void> local;
  std::shared_ptr<void>& slot = ctx.state ? *ctx.state : local;
  auto* plans = static_cast<CufftPlans*>(slot.get());
  if (!plans || plans->in_shape != x.shape || plans->out_shape != y.shape) {
    auto made = make_plans(node, x, y);
    plans = made.get();
    slot = std::move(made);
  }
  CudaBackend::Workspace ws = cuda_backend_of(ctx).workspace(stream);
  if (ws.bytes < plans->workspace_bytes())
    fail(ErrorKind::unsupported, "fft outside a plan needs a cuFFT work area of " +
                                     std::to_string(plans->workspace_bytes()) +
                                     " bytes; the stream's workspace has " +
                                     std::to_string(ws.bytes));
  run_plans(*plans, x, y, ws.data, ws.bytes, stream);
}

}  // namespace

void register_fft_kernels(Backend& b) {
  for (const char* op : {"fft", "ifft", "rfft", "irfft"}) {
    Kernel kernel{std::string("cuda.") + op + ".cufft", run_fft};
    // Kernels are registered by the CudaBackend itself, so `b` is one and outlives them.
    kernel.tactics = [&b](const ir::Node& node, std::span<const TensorView> in,
                          std::span<const TensorView> out) {
      DeviceScope scope(b);
      std::shared_ptr<CufftPlans> plans = make_plans(node, in[0], out[0]);
      const size_t bytes = plans->workspace_bytes();
      return std::vector<Tactic>{Tactic{"", bytes, std::move(plans)}};
    };
    b.add_kernel(op, std::move(kernel));
  }
  register_frames_kernels(b);
}

}  // namespace loom::cuda
