// The alias ops' outputs as views of their input (strides and an offset, no copy): reshape,
// transpose (permute), broadcast_to, slice (with steps) and frames.
#pragma once

#include <functional>
#include <optional>

#include "ir/op_registry.h"

namespace loom::ops {

// Output 0 of an alias op as a view of input 0: element (i_0, ...) of the output is element
// offset + sum(i_d * strides[d]) of input 0's storage (in elements).
struct ViewLayout {
  Strides strides;
  int64_t offset = 0;
};

// The output as a view of input 0, given input 0's extents and strides (it may be a view
// already) and the output's extents; nullopt when this node cannot be a view (frames with
// padding or a window; a reshape whose input's strides do not allow it): then it runs its
// kernel, or, with none, the planner gathers input 0 into the output.
using ViewFn =
    std::function<std::optional<ViewLayout>(const ir::Node& node, const Extents& in_shape,
                                            const Strides& in_strides, const Extents& out_shape)>;

// The op's view function; null for ops that are not alias ops (read and slice_update_inplace
// alias their input's bytes as they are: OpDef::aliases_input).
const ViewFn* view_function(const ir::OpDef& op);

std::optional<ViewLayout> reshape_view(const ir::Node& node, const Extents& in_shape,
                                       const Strides& in_strides, const Extents& out_shape);
std::optional<ViewLayout> transpose_view(const ir::Node& node, const Extents& in_shape,
                                         const Strides& in_strides, const Extents& out_shape);
std::optional<ViewLayout> broadcast_view(const ir::Node& node, const Extents& in_shape,
                                         const Strides& in_strides, const Extents& out_shape);
std::optional<ViewLayout> slice_view(const ir::Node& node, const Extents& in_shape,
                                     const Strides& in_strides, const Extents& out_shape);
std::optional<ViewLayout> frames_view(const ir::Node& node, const Extents& in_shape,
                                      const Strides& in_strides, const Extents& out_shape);

}  // namespace loom::ops
