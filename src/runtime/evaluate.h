// Runs one node on concrete data outside any executable (constant folding uses it).
#pragma once

#include <vector>

#include "ir/node.h"
#include "loom/tensor_data.h"

namespace loom::runtime {

// Outputs on `device`; inputs must be contiguous and on that device.
std::vector<TensorData> evaluate_node(const ir::Node& node, const std::vector<TensorData>& inputs,
                                      Device device);

}  // namespace loom::runtime
