#include "io/byte_reader.h"

#include "loom/error.h"

namespace loom::io {

void ByteReader::truncated(uint64_t n, std::string_view what, std::string_view context) const {
  std::string message = path_ + ": truncated or corrupt: " + std::string(what);
  if (!context.empty()) message += " of " + std::string(context);
  message += " at offset " + std::to_string(pos_) + " needs " + std::to_string(n) +
             " bytes, but only " + std::to_string(remaining()) + " remain (file size " +
             std::to_string(bytes_.size()) + ")";
  fail(ErrorKind::io, message);
}

}  // namespace loom::io
