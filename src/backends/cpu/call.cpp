// The call op on the CPU: the callee runs inside the caller's run (src/runtime/call.cpp).
#include "backends/cpu/cpu_kernels.h"

namespace loom {
Kernel call_kernel(const std::string& name);
}

namespace loom::cpu {

void register_call_kernels(Backend& b) { b.add_kernel("call", call_kernel("cpu.call")); }

}  // namespace loom::cpu
