// Parameters of the slice ops and gather as their kernels read them (see norm_params.h).
// Lists are read by reference: a run copies nothing.
#pragma once

#include <cstdint>
#include <vector>

#include "ir/node.h"

namespace loom::ops {

struct SliceParams {
  const std::vector<int64_t>& axes;  // empty: the leading axes
  const std::vector<int64_t>& starts;
  const std::vector<int64_t>& stops;
  const std::vector<int64_t>& steps;  // empty: all 1
  static SliceParams decode(const ir::Node& node) {
    return {node.attrs.get<std::vector<int64_t>>("axes"),
            node.attrs.get<std::vector<int64_t>>("starts"),
            node.attrs.get<std::vector<int64_t>>("stops"),
            node.attrs.get<std::vector<int64_t>>("steps")};
  }
};

struct DynamicSliceParams {
  const std::vector<int64_t>& axes;
  const std::vector<int64_t>& sizes;
  static DynamicSliceParams decode(const ir::Node& node) {
    return {node.attrs.get<std::vector<int64_t>>("axes"),
            node.attrs.get<std::vector<int64_t>>("sizes")};
  }
};

struct GatherParams {
  int64_t axis;
  static GatherParams decode(const ir::Node& node) { return {node.attrs.get<int64_t>("axis")}; }
};

}  // namespace loom::ops
