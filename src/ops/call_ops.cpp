// The call op: a node that runs another executable bound to a name (src/runtime/call.cpp).
#include "ir/op_registry.h"
#include "loom/call.h"
#include "ops/op_families.h"
#include "ops/schema_util.h"

namespace loom {

Tensor call(const std::string& symbol, const std::vector<Tensor>& inputs, DType dtype,
            Shape shape) {
  if (inputs.empty()) fail(ErrorKind::value, "call '" + symbol + "': needs at least one input");
  return graph_of(inputs[0]).add_node1(
      "call", inputs, Attributes{{"symbol", symbol}, {"dtype", dtype}, {"shape", shape}});
}

}  // namespace loom

namespace loom::ops {

void register_call_ops(ir::OpRegistry& r) {
  r.add(
      {.name = "call",
       .doc = "Runs the executable bound to `symbol` on the inputs (a callable, as an adapter).",
       .inputs = {variadic_input("inputs", "the callee's placeholders, in the order it made them")},
       .attrs = {required_attr("symbol", AttrType::string, "the name an executable is bound to"),
                 required_attr("dtype", AttrType::dtype, "the callee's output dtype"),
                 required_attr("shape", AttrType::shape,
                               "the callee's output shape (dims may be the caller's symbols)")},
       .outputs = {output("y", "the callee's output")},
       .infer = [](const ir::InferContext& c) -> std::vector<ir::TensorType> {
         if (c.attrs.get<std::string>("symbol").empty())
           c.fail(ErrorKind::value, "the symbol is empty");
         return {{c.attrs.get<DType>("dtype"), c.resolve(c.attrs.get<Shape>("shape"))}};
       },
       // The callee may be rebound after compiling: never evaluated at compile time.
       .foldable = false});
}

}  // namespace loom::ops
