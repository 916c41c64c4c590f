// Views in a plan: which alias ops' outputs are views of their input (strides and an offset
// into the input's storage, no kernel), the views a kernel reads as they are, and the copy
// the planner puts before a kernel that needs a contiguous input.
#pragma once

#include <map>
#include <memory>
#include <set>
#include <vector>

#include "backends/backend.h"
#include "ir/node.h"

namespace loom::runtime {

// Where a value's elements are in its storage root (strides and offset in elements).
struct ValueLayout {
  Strides strides;
  int64_t offset = 0;
};

struct ViewPlan {
  std::map<ir::Value, ValueLayout> layouts;  // views and aliases; others are contiguous at 0
  std::set<const ir::Node*> views;           // alias ops lowered as views (no step)
  std::set<const ir::Node*> copies;          // reshapes whose input cannot be re-strided:
                                             // a step of copy_kernel gathers it
  // The input whose storage output 0 shares, or -1 (the node has storage of its own).
  int alias_source(const ir::Node& node, int output = 0) const;
  ValueLayout layout(ir::Value v, const Extents& shape) const;
};

// Decides every alias op's lowering from concrete types (`types[node][output]`).
ViewPlan plan_views(const std::vector<std::unique_ptr<ir::Node>>& nodes,
                    const std::map<const ir::Node*, std::vector<ir::TensorType>>& types);

// Contiguous strides when the view is contiguous (unit dims' strides never matter), else as is.
Strides normalized_strides(const Extents& shape, const Strides& strides);

// Whether every kernel may be handed this view as it is: contiguous and 16-byte aligned (what
// the vectorised kernels assume of arena values). Others are gathered, unless the kernel
// reads strided inputs and its `supports` takes them.
bool plain_view(const TensorView& view);

// Bytes from the view's first element to one past its last (strides >= 0).
size_t span_bytes(const TensorView& view);

// The planner's copy: output 0 = input 0 gathered contiguous (Backend::copy_strided). It
// runs reshapes of views that cannot be re-strided.
std::shared_ptr<const Kernel> copy_kernel(Device device);

}  // namespace loom::runtime
