// The parts of compile() that loading a package shares (src/package/package_load.cpp).
#pragma once

#include "runtime/executable_impl.h"

namespace loom::compiler {

// Makes or checks the variable store and declares every variable of impl.program in it.
void declare_variables(Executable::Impl& impl, const CompileOptions& options);
// After the passes: placeholders and symbols, constants on the device, the stream, the
// run-time options, and a kernel for every node (loom::Error(unsupported) otherwise).
void prepare_runtime(Executable::Impl& impl, const CompileOptions& options);

}  // namespace loom::compiler
