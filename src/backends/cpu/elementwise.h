// The parts of the CPU elementwise family, each registered by register_elementwise_kernels
// from a table of (op name, kernel function) rows.
#pragma once

#include <span>
#include <string>

#include "backends/backend.h"

namespace loom::cpu {

using ElementwiseRunFn = void (*)(KernelContext&, const ir::Node&, std::span<const TensorView>,
                                  std::span<TensorView>);

struct ElementwiseKernel {
  const char* op;
  ElementwiseRunFn run;
};

inline void add_elementwise_kernels(Backend& b, std::span<const ElementwiseKernel> table) {
  for (const ElementwiseKernel& row : table)
    b.add_kernel(row.op, Kernel{std::string("cpu.") + row.op, row.run, nullptr});
}

void register_binary_kernels(Backend& b);  // arithmetic, comparison, where
void register_unary_kernels(Backend& b);   // neg, abs, relu and the float math
void register_cast_kernels(Backend& b);    // cast between every pair of dtypes

}  // namespace loom::cpu
