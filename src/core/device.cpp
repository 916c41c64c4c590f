#include "loom/device.h"

#include <string>

#include "loom/error.h"

namespace loom {

std::string Device::str() const {
  if (kind == DeviceKind::cpu) return "cpu";
  return index == 0 ? "cuda" : "cuda:" + std::to_string(index);
}

Device Device::parse(const std::string& text) {
  if (text == "cpu") return cpu();
  if (text == "cuda") return cuda(0);
  if (text.rfind("cuda:", 0) == 0) {
    std::string rest = text.substr(5);
    if (!rest.empty() && rest.size() < 4 &&
        rest.find_first_not_of("0123456789") == std::string::npos)
      return cuda(std::stoi(rest));
  }
  fail(ErrorKind::value,
       "unknown device '" + text + "' (valid names: cpu, cuda, cuda:N with N a GPU index)");
}

}  // namespace loom
