// assign: the copy of a value into its variable's buffer.
#include <cstring>

#include "backends/cpu/cpu_kernels.h"

namespace loom::cpu {

void register_source_kernels(Backend& b) {
  b.add_kernel("assign", Kernel{"cpu.assign",
                                [](KernelContext&, const ir::Node&, std::span<const TensorView> in,
                                   std::span<TensorView>) {
                                  if (in[0].data != in[1].data)
                                    std::memmove(in[0].data, in[1].data, in[1].nbytes());
                                },
                                nullptr});
}

}  // namespace loom::cpu
