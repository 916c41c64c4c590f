// loom::Error: every failure a user can cause ends here, with a category and a message
// that says what was wrong and where.
#pragma once

#include <stdexcept>
#include <string>

namespace loom {

enum class ErrorKind { shape, dtype, value, io, device, unsupported, internal };

const char* error_kind_name(ErrorKind kind);

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& message);
  ErrorKind kind() const { return kind_; }

 private:
  ErrorKind kind_;
};

[[noreturn]] void fail(ErrorKind kind, const std::string& message);

}  // namespace loom
