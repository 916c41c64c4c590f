// Test hooks over a backend's kernel table: put extra kernels first for an op, or filter its
// kernels, and restore the table when the scope ends.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "backends/backend.h"

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

}  // namespace loom::testing
