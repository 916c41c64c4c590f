#include "runtime/views.h"

#include <cstdint>

#include "backends/strided_views.h"
#include "ir/op_registry.h"
#include "ops/view_layouts.h"

namespace loom::runtime {

int ViewPlan::alias_source(const ir::Node& node, int output) const {
  if (views.count(&node)) return output == 0 ? 0 : -1;
  if (copies.count(&node)) return -1;
  return node.op->aliased_input(output);
}

ValueLayout ViewPlan::layout(ir::Value v, const Extents& shape) const {
  auto it = layouts.find(v);
  return it != layouts.end() ? it->second : ValueLayout{contiguous_strides(shape), 0};
}

Strides normalized_strides(const Extents& shape, const Strides& strides) {
  Strides contiguous = contiguous_strides(shape);
  for (size_t d = 0; d < shape.size(); ++d)
    if (shape[d] != 1 && strides[d] != contiguous[d]) return strides;
  return contiguous;
}

ViewPlan plan_views(const std::vector<std::unique_ptr<ir::Node>>& nodes,
                    const std::map<const ir::Node*, std::vector<ir::TensorType>>& types) {
  ViewPlan plan;
  auto extents = [&](ir::Value v) {
    return static_extents(types.at(v.node).at(size_t(v.output)).shape);
  };
  for (const auto& node : nodes) {
    ir::Node* n = node.get();
    ir::Value out{n, 0};
    if (const ops::ViewFn* view_fn = ops::view_function(*n->op)) {
      const ir::Value in = n->inputs.at(0);
      const Extents in_shape = extents(in), out_shape = extents(out);
      const ValueLayout from = plan.layout(in, in_shape);
      auto view = (*view_fn)(*n, in_shape, from.strides, out_shape);
      if (view) {
        ValueLayout to{normalized_strides(out_shape, view->strides), from.offset + view->offset};
        // Packed elements (i4) have no address of their own: only a whole-buffer reshape.
        bool addressable = !is_packed(types.at(n)[0].dtype) ||
                           (to.offset == 0 && to.strides == contiguous_strides(out_shape));
        if (addressable) {
          plan.layouts[out] = std::move(to);
          plan.views.insert(n);
          continue;
        }
      }
      if (n->op->aliases_input >= 0) plan.copies.insert(n);
      continue;  // otherwise its kernel runs
    }
    // read, in-place updates: each aliasing output has its input's own layout.
    for (size_t o = 0; o < n->outputs.size(); ++o) {
      const int source = n->op->aliased_input(int(o));
      if (source < 0) continue;
      auto it = plan.layouts.find(n->inputs.at(size_t(source)));
      if (it != plan.layouts.end()) plan.layouts[{n, int(o)}] = it->second;
    }
  }
  return plan;
}

bool plain_view(const TensorView& view) {
  return is_contiguous(view) && reinterpret_cast<uintptr_t>(view.data) % 16 == 0;
}

size_t span_bytes(const TensorView& view) {
  if (view.numel() == 0) return 0;
  int64_t last = 0;
  for (size_t d = 0; d < view.shape.size(); ++d) last += (view.shape[d] - 1) * view.strides[d];
  return storage_bytes(view.dtype, last + 1);
}

std::shared_ptr<const Kernel> copy_kernel(Device device) {
  auto run = [](KernelContext& ctx, const ir::Node&, std::span<const TensorView> in,
                std::span<TensorView> out) {
    ctx.backend.copy_strided(out[0].data, in[0].data, storage_bytes(in[0].dtype, 1), in[0].shape,
                             in[0].strides, ctx.stream);
  };
  return std::make_shared<const Kernel>(device.kind == DeviceKind::cpu ? "cpu.copy" : "cuda.copy",
                                        run, nullptr, nullptr, true);
}

}  // namespace loom::runtime
