#include "ops/view_layouts.h"

#include <algorithm>
#include <map>

#include "ops/fft_params.h"
#include "ops/slice_params.h"

namespace loom::ops {

// NumPy's no-copy reshape: the input's non-unit dims are grouped with the output's so that
// each group multiplies to the same count; a group whose input dims are not contiguous among
// themselves cannot be re-split without a copy.
std::optional<ViewLayout> reshape_view(const ir::Node&, const Extents& in_shape,
                                       const Strides& in_strides, const Extents& out_shape) {
  ViewLayout v;
  if (numel(out_shape) == 0) {  // nothing is read: any strides will do
    v.strides = contiguous_strides(out_shape);
    return v;
  }
  Extents old_dims;
  Strides old_strides;
  for (size_t d = 0; d < in_shape.size(); ++d)
    if (in_shape[d] != 1) {
      old_dims.push_back(in_shape[d]);
      old_strides.push_back(in_strides[d]);
    }
  const size_t old_n = old_dims.size(), new_n = out_shape.size();
  v.strides.assign(new_n, 1);
  size_t oi = 0, oj = 1, ni = 0, nj = 1;
  while (ni < new_n && oi < old_n) {
    int64_t np = out_shape[ni], op = old_dims[oi];
    while (np != op) {
      if (np < op) {
        np *= out_shape[nj++];
      } else {
        op *= old_dims[oj++];
      }
    }
    for (size_t k = oi; k + 1 < oj; ++k)
      if (old_strides[k] != old_dims[k + 1] * old_strides[k + 1]) return std::nullopt;
    v.strides[nj - 1] = old_strides[oj - 1];
    for (size_t k = nj - 1; k > ni; --k) v.strides[k - 1] = v.strides[k] * out_shape[k];
    ni = nj++;
    oi = oj++;
  }
  // Trailing unit dims: their stride is never stepped; keep it tidy.
  int64_t last = ni >= 1 ? v.strides[ni - 1] : 1;
  for (size_t k = ni; k < new_n; ++k) v.strides[k] = last;
  return v;
}

std::optional<ViewLayout> transpose_view(const ir::Node& node, const Extents&,
                                         const Strides& in_strides, const Extents&) {
  const auto& perm = node.attrs.get<std::vector<int64_t>>("perm");
  const int64_t rank = int64_t(in_strides.size());
  ViewLayout v;
  for (int64_t p : perm) v.strides.push_back(in_strides[size_t(p < 0 ? p + rank : p)]);
  return v;
}

std::optional<ViewLayout> broadcast_view(const ir::Node&, const Extents& in_shape,
                                         const Strides& in_strides, const Extents& out_shape) {
  ViewLayout v;
  const size_t offset = out_shape.size() - in_shape.size();  // the input is right-aligned
  for (size_t d = 0; d < out_shape.size(); ++d) {
    bool repeated = d < offset || in_shape[d - offset] != out_shape[d];
    v.strides.push_back(repeated ? 0 : in_strides[d - offset]);
  }
  return v;
}

std::optional<ViewLayout> slice_view(const ir::Node& node, const Extents& in_shape,
                                     const Strides& in_strides, const Extents&) {
  const auto [axes, starts, stops, steps] = SliceParams::decode(node);
  const int64_t rank = int64_t(in_shape.size());
  ViewLayout v{in_strides, 0};
  for (size_t i = 0; i < starts.size(); ++i) {
    int64_t a = axes.empty() ? int64_t(i) : axes[i];
    size_t d = size_t(a < 0 ? a + rank : a);
    int64_t dim = in_shape[d];
    // Python's start, as the slice kernels take it: negative counts from the end, clamped.
    int64_t start = std::clamp(starts[i] < 0 ? starts[i] + dim : starts[i], int64_t(0), dim);
    v.offset += start * in_strides[d];
    v.strides[d] = in_strides[d] * (steps.empty() ? 1 : steps[i]);
  }
  return v;
}

// Frame f starts hop samples after frame f - 1, so the frames overlap in the signal's own
// bytes. Padding and a window change values: those frames are the kernel's.
std::optional<ViewLayout> frames_view(const ir::Node& node, const Extents&,
                                      const Strides& in_strides, const Extents&) {
  const FramesParams p = FramesParams::decode(node);
  if (p.pad != 0 || node.inputs.size() > 1) return std::nullopt;
  ViewLayout v;
  v.strides.assign(in_strides.begin(), in_strides.end() - 1);
  v.strides.push_back(p.hop * in_strides.back());
  v.strides.push_back(in_strides.back());
  return v;
}

const ViewFn* view_function(const ir::OpDef& op) {
  // Keyed by the registry's definitions, which live as long as the process.
  static const std::map<const ir::OpDef*, ViewFn> table = [] {
    const ir::OpRegistry& r = ir::OpRegistry::instance();
    return std::map<const ir::OpDef*, ViewFn>{{&r.at("reshape"), reshape_view},
                                              {&r.at("transpose"), transpose_view},
                                              {&r.at("broadcast_to"), broadcast_view},
                                              {&r.at("slice"), slice_view},
                                              {&r.at("frames"), frames_view}};
  }();
  auto it = table.find(&op);
  return it == table.end() ? nullptr : &it->second;
}

}  // namespace loom::ops
