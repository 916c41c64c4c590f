#include "loom/error.h"

namespace loom {

const char* error_kind_name(ErrorKind kind) {
  static const char* const names[] = {"shape",  "dtype",       "value",   "io",
                                      "device", "unsupported", "internal"};
  return names[int(kind)];
}

Error::Error(ErrorKind kind, const std::string& message)
    : std::runtime_error(message), kind_(kind) {}

void fail(ErrorKind kind, const std::string& message) { throw Error(kind, message); }

}  // namespace loom
