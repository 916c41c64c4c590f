// CUDA kernel of `fused`: a kernel generated from the node's expression (fused_source.h),
// compiled by NVRTC for this GPU and cached (kernel_cache.h). The first call of a node (an
// eager run: capture comes later) generates and loads its kernel; every call then fills the
// kernel's parameter struct from the views and launches it, so a captured graph replays one
// launch per fused node.
#include <memory>
#include <string>
#include <vector>

#include "backends/cuda/cuda_error.h"
#include "backends/cuda/cuda_kernels.h"
#include "backends/cuda/device/launch.cuh"
#include "backends/cuda/fused_source.h"
#include "backends/cuda/kernel_cache.h"
#include "ops/fused_expression.h"

namespace loom::cuda {

namespace {

// The largest parameter struct every CUDA GPU takes.
constexpr size_t kMaxParamBytes = 4096;

struct Prepared {
  Extents out_shape;
  std::vector<Extents> in_shapes;
  cudaKernel_t kernel = nullptr;
  int64_t n = 0;
  // The parameter struct as 8-byte words; the pointers are written at each launch.
  std::vector<int64_t> params;
  size_t first_pointer = 0;
};

struct FusedState {
  std::shared_ptr<const ops::FusedExpression> expression;
  std::unique_ptr<Prepared> prepared;
};

std::unique_ptr<Prepared> prepare(const ops::FusedExpression& e, std::span<const TensorView> in,
                                  std::span<TensorView> out, const std::string& cache_dir) {
  auto p = std::make_unique<Prepared>();
  p->out_shape = out[0].shape;
  p->n = out[0].numel();
  // The output's dims without the size-one ones (at least one dim).
  std::vector<size_t> kept;
  for (size_t d = 0; d < out[0].shape.size(); ++d)
    if (out[0].shape[d] != 1) kept.push_back(d);
  Extents dims;
  for (size_t d : kept) dims.push_back(out[0].shape[d]);
  if (dims.empty()) dims.push_back(1);

  FusedKernelShape shape;
  shape.rank = int(dims.size());
  std::vector<Strides> strides;
  for (const TensorView& v : in) {
    p->in_shapes.push_back(v.shape);
    shape.inputs.push_back(v.dtype);
    const int64_t count = v.numel();
    if (count == p->n) {
      shape.access.push_back(FusedAccess::same);
    } else if (count == 1) {
      shape.access.push_back(FusedAccess::scalar);
    } else {
      // Contiguous strides of v aligned to the output's trailing dims, 0 where v has size one.
      shape.access.push_back(FusedAccess::broadcast);
      const size_t rank = out[0].shape.size(), lead = rank - v.shape.size();
      Strides aligned(rank, 0);
      int64_t s = 1;
      for (size_t j = v.shape.size(); j-- > 0;) {
        aligned[lead + j] = v.shape[j] == 1 ? 0 : s;
        s *= v.shape[j];
      }
      Strides kept_strides;
      for (size_t d : kept) kept_strides.push_back(aligned[d]);
      if (kept_strides.empty()) kept_strides.push_back(0);
      strides.push_back(kept_strides);
    }
  }
  p->params.push_back(p->n);
  p->params.insert(p->params.end(), dims.begin(), dims.end());
  for (const Strides& s : strides) p->params.insert(p->params.end(), s.begin(), s.end());
  p->first_pointer = p->params.size();
  p->params.resize(p->params.size() + in.size() + out.size(), 0);
  if (p->params.size() * 8 > kMaxParamBytes)
    fail(ErrorKind::unsupported, "fused node with " + std::to_string(in.size()) + " inputs and " +
                                     std::to_string(out.size()) +
                                     " outputs: too many for one CUDA launch's parameters");
  p->kernel = generated_kernel(fused_kernel_source(e, shape), kFusedKernelName, cache_dir);
  return p;
}

void run_fused(KernelContext& ctx, const ir::Node& node, std::span<const TensorView> in,
               std::span<TensorView> out) {
  std::shared_ptr<void> local;
  std::shared_ptr<void>& holder = ctx.state ? *ctx.state : local;
  auto* state = static_cast<FusedState*>(holder.get());
  if (!state) {
    auto fresh = std::make_shared<FusedState>();
    fresh->expression = std::make_shared<ops::FusedExpression>(
        ops::FusedExpression::parse(node.attrs.get<std::string>("expression")));
    state = fresh.get();
    holder = std::move(fresh);
  }
  if (out[0].numel() == 0) return;
  bool same = state->prepared && state->prepared->out_shape == out[0].shape &&
              state->prepared->in_shapes.size() == in.size();
  for (size_t k = 0; same && k < in.size(); ++k)
    same = state->prepared->in_shapes[k] == in[k].shape;
  if (!same)
    state->prepared = prepare(*state->expression, in, out,
                              kernel_cache_directory(ctx.kernel_cache ? *ctx.kernel_cache : ""));
  Prepared& p = *state->prepared;
  size_t w = p.first_pointer;
  for (const TensorView& v : in) p.params[w++] = int64_t(reinterpret_cast<uintptr_t>(v.data));
  for (const TensorView& v : out) p.params[w++] = int64_t(reinterpret_cast<uintptr_t>(v.data));
  void* args[] = {p.params.data()};
  const unsigned blocks = std::min(blocks_for(p.n, kThreads), 65536u);
  check_cuda(cudaLaunchKernel(reinterpret_cast<const void*>(p.kernel), dim3(blocks), dim3(kThreads),
                              args, 0, stream_of(ctx)),
             "launch of a generated fused kernel");
}

}  // namespace

void register_fused_kernels(Backend& b) { b.add_kernel("fused", Kernel{"cuda.fused", run_fused}); }

}  // namespace loom::cuda
