// Callables: a `call` node runs another executable, bound to a name, inside the caller's run,
// so that a part of a model (an adapter) can be swapped without recompiling the model.
#pragma once

#include <string>
#include <vector>

#include "loom/graph.h"

namespace loom {

// Runs the executable bound to `symbol` (CompileOptions::callables, Executable::bind) on
// `inputs`, which feed the callee's placeholders in the order the callee's graph made them.
// The callee's one output must have `dtype` and `shape` (dims may be the caller's symbols);
// the signature is checked when an executable is bound, the sizes again at run time.
Tensor call(const std::string& symbol, const std::vector<Tensor>& inputs, DType dtype, Shape shape);

}  // namespace loom
