// Executable: lifetime and accessors; each takes the executable's lock (see executable.h).
#include "loom/error.h"
#include "runtime/executable_impl.h"

namespace loom {

Executable::Executable() = default;
Executable::~Executable() = default;
Executable::Executable(Executable&&) noexcept = default;
Executable& Executable::operator=(Executable&&) noexcept = default;

Executable make_executable(std::unique_ptr<Executable::Impl> impl) {
  Executable exe;
  exe.impl_ = std::move(impl);
  return exe;
}

Executable::Impl& impl_of(const Executable& exe) { return checked_impl(exe.impl_); }

std::string Executable::package_note() const {
  Impl& impl = checked_impl(impl_);
  std::lock_guard<std::mutex> lock(impl.mutex);
  return impl.package_note;
}

Executable::Impl& checked_impl(const std::unique_ptr<Executable::Impl>& impl) {
  if (!impl) fail(ErrorKind::value, "use of an empty Executable (made by compile())");
  return *impl;
}

Device Executable::device() const { return checked_impl(impl_).device; }
VariableStore& Executable::variables() { return *checked_impl(impl_).variables; }
const std::shared_ptr<VariableStore>& Executable::variable_store() const {
  return checked_impl(impl_).variables;
}
const std::vector<PassDump>& Executable::pass_dumps() const { return checked_impl(impl_).dumps; }
const RunStats& Executable::last_run_stats() const {
  Impl& impl = checked_impl(impl_);
  std::lock_guard<std::mutex> lock(impl.mutex);
  return impl.stats;
}
size_t Executable::arena_bytes() const {
  Impl& impl = checked_impl(impl_);
  std::lock_guard<std::mutex> lock(impl.mutex);
  return impl.last_plan ? impl.last_plan->arena_bytes : 0;
}
size_t Executable::unshared_intermediate_bytes() const {
  Impl& impl = checked_impl(impl_);
  std::lock_guard<std::mutex> lock(impl.mutex);
  return impl.last_plan ? impl.last_plan->unshared_bytes : 0;
}
size_t Executable::cached_plans() const {
  Impl& impl = checked_impl(impl_);
  std::lock_guard<std::mutex> lock(impl.mutex);
  return impl.plans.size();
}

}  // namespace loom
