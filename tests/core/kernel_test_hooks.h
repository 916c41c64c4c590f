// Test hooks over a backend's kernel table: put extra kernels first for an op, or filter its
// kernels, and restore the table when the scope ends; and a slow matmul kernel to put first,
// with the tactic tests' setup around it (measurement, not registration order, must pick).
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "backends/backend.h"
#include "loom/loom.h"

namespace loom::testing {

class KernelOverride {
 public:
  KernelOverride(Device device, std::string op, std::vector<std::shared_ptr<const Kernel>> kernels)
      : backend_(backend_for(device)), op_(std::move(op)), saved_(backend_.kernels(op_)) {
    backend_.set_kernels(op_, std::move(kernels));
  }
  ~KernelOverride() { backend_.set_kernels(op_, saved_); }
  KernelOverride(const KernelOverride&) = delete;
  KernelOverride& operator=(const KernelOverride&) = delete;

  // The kernels the op had before the override.
  const std::vector<std::shared_ptr<const Kernel>>& saved() const { return saved_; }

 private:
  Backend& backend_;
  std::string op_;
  std::vector<std::shared_ptr<const Kernel>> saved_;
};

// A correct but deliberately slow f32 matmul (no transposes, no bias, rank 2): each run
// sleeps `delay` first.
inline std::shared_ptr<const Kernel> slow_matmul(std::chrono::milliseconds delay) {
  Kernel k;
  k.name = "test.matmul.slow";
  k.supports = [](const ir::Node& node, std::span<const TensorView> in) {
    return in.size() == 2 && in[0].dtype == DType::f32 && in[0].rank() == 2 && in[1].rank() == 2 &&
           !node.attrs.get_or<bool>("transpose_a", false) &&
           !node.attrs.get_or<bool>("transpose_b", false);
  };
  k.run = [delay](KernelContext&, const ir::Node&, std::span<const TensorView> in,
                  std::span<TensorView> out) {
    std::this_thread::sleep_for(delay);
    const int64_t m = in[0].shape[0], kk = in[0].shape[1], n = in[1].shape[1];
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        float acc = 0;
        for (int64_t p = 0; p < kk; ++p)
          acc += in[0].as<float>()[i * kk + p] * in[1].as<float>()[p * n + j];
        out[0].as<float>()[i * n + j] = acc;
      }
  };
  return std::make_shared<const Kernel>(std::move(k));
}

// The CPU's matmul kernels with slow_matmul(delay) registered first, so that "the first that
// supports" would pick it.
inline std::vector<std::shared_ptr<const Kernel>> slow_first(std::chrono::milliseconds delay) {
  std::vector<std::shared_ptr<const Kernel>> kernels{slow_matmul(delay)};
  for (auto& k : backend_for(Device::cpu()).kernels("matmul")) kernels.push_back(k);
  return kernels;
}

// The tactic tests' setup (tests/core/tactics_test.cpp, tests/package/package_test.cpp):
// slow_first(delay) as the CPU's matmul kernels while it lives, the process's tactic cache
// cleared, and options whose one output is matmul(a, b) of f32 placeholders "a" and "b".
struct SlowMatmulGraph {
  SlowMatmulGraph(std::chrono::milliseconds delay, Shape a_shape, Shape b_shape)
      : hook(Device::cpu(), "matmul", slow_first(delay)) {
    clear_tactic_cache();
    Tensor a = g.placeholder("a", std::move(a_shape)), b = g.placeholder("b", std::move(b_shape));
    options.outputs = {matmul(a, b)};
  }
  KernelOverride hook;
  Graph g;
  CompileOptions options;
};

}  // namespace loom::testing
