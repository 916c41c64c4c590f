// libFuzzer entry for the GGUF reader: any input must open or throw loom::Error(io); an opened
// file's getters and tensor spans must stay in bounds (ASan and UBSan watch).
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "io/gguf.h"
#include "loom/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto* bytes = reinterpret_cast<const std::byte*>(data);
  try {
    auto f = loom::io::GgufFile::from_bytes(std::vector<std::byte>(bytes, bytes + size), "input");
    for (const auto& key : f.keys()) {
      try {
        f.value(key, 4);
        f.get_int_array(key);
      } catch (const loom::Error& e) {
        if (e.kind() != loom::ErrorKind::io) std::abort();
      }
    }
    for (const auto& t : f.tensors()) {
      auto span = f.tensor_bytes(t);
      if (span.size() && (span.front() == std::byte{1}) == (span.back() == std::byte{2})) {
        // Touch both ends so that ASan sees any out-of-bounds span.
      }
    }
  } catch (const loom::Error& e) {
    if (e.kind() != loom::ErrorKind::io) std::abort();
  }
  return 0;
}
