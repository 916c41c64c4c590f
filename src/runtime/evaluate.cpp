#include "runtime/evaluate.h"

#include "backends/backend.h"
#include "ir/op_registry.h"
#include "loom/error.h"

namespace loom::runtime {

std::vector<TensorData> evaluate_node(const ir::Node& node, const std::vector<TensorData>& inputs,
                                      Device device) {
  std::vector<ir::TensorType> types;
  for (const auto& t : inputs) types.push_back({t.dtype(), to_shape(t.shape())});
  SymbolBinding none;
  ir::InferContext ctx{node.op_name(), types, node.attrs, &none};
  auto out_types = node.op->infer(ctx);

  std::vector<TensorData> outputs;
  if (node.op->aliases_input >= 0) {
    const TensorData& src = inputs.at(size_t(node.op->aliases_input));
    Extents shape = static_extents(out_types.at(0).shape);
    outputs.push_back(src.view(shape, contiguous_strides(shape), src.offset()));
    return outputs;
  }
  Backend& backend = backend_for(device);
  std::vector<TensorView> in_views, out_views;
  for (const auto& t : inputs) in_views.push_back({t.data(), t.dtype(), t.shape(), t.strides()});
  for (const auto& type : out_types) {
    Extents shape = static_extents(type.shape);
    outputs.push_back(TensorData::empty(type.dtype, shape, device));
    out_views.push_back({outputs.back().data(), type.dtype, shape, contiguous_strides(shape)});
  }
  const Kernel* kernel = backend.find_kernel(node, in_views);
  if (!kernel)
    fail(ErrorKind::unsupported,
         "no " + device.str() + " kernel for op '" + node.op_name() + "' with these inputs");
  std::shared_ptr<void> state;
  void* stream = nullptr;
  KernelContext kctx{backend, stream, &state};
  kernel->run(kctx, node, in_views, out_views);
  backend.synchronize(stream);
  return outputs;
}

}  // namespace loom::runtime
