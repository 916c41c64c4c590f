#include "loom/attributes.h"

#include <charconv>
#include <cstring>
#include <sstream>

#include "loom/error.h"

namespace loom {

namespace {
template <class T>
const char* type_name() {
  if constexpr (std::is_same_v<T, int64_t>) return "int";
  if constexpr (std::is_same_v<T, double>) return "float";
  if constexpr (std::is_same_v<T, bool>) return "bool";
  if constexpr (std::is_same_v<T, std::string>) return "string";
  if constexpr (std::is_same_v<T, std::vector<int64_t>>) return "int list";
  if constexpr (std::is_same_v<T, DType>) return "dtype";
  if constexpr (std::is_same_v<T, Shape>) return "shape";
  if constexpr (std::is_same_v<T, TensorData>) return "tensor";
  if constexpr (std::is_same_v<T, std::vector<double>>) return "float list";
  if constexpr (std::is_same_v<T, Record>) return "record";
  return "?";
}

// The shortest text that reads back as the same double (1e-05, not 1.0000000000000001e-05).
std::string double_text(double v) {
  char buf[32];
  auto result = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, result.ptr);
}
}  // namespace

// A node's attributes come from whoever built the graph (Graph::add_node, a model file): one
// missing or of the wrong type is bad input (ErrorKind::value), not a bug of Loom's.
template <class T>
const T& Attributes::get(const std::string& name) const {
  auto it = map_.find(name);
  if (it == map_.end()) fail(ErrorKind::value, "missing attribute '" + name + "'");
  const T* v = std::get_if<T>(&it->second);
  if (!v)
    fail(ErrorKind::value,
         "attribute '" + name + "' is not of type " + std::string(type_name<T>()));
  return *v;
}

template const int64_t& Attributes::get<int64_t>(const std::string&) const;
template const double& Attributes::get<double>(const std::string&) const;
template const bool& Attributes::get<bool>(const std::string&) const;
template const std::string& Attributes::get<std::string>(const std::string&) const;
template const std::vector<int64_t>& Attributes::get<std::vector<int64_t>>(
    const std::string&) const;
template const DType& Attributes::get<DType>(const std::string&) const;
template const Shape& Attributes::get<Shape>(const std::string&) const;
template const TensorData& Attributes::get<TensorData>(const std::string&) const;
template const std::vector<double>& Attributes::get<std::vector<double>>(const std::string&) const;
template const Record& Attributes::get<Record>(const std::string&) const;

Record::Record() : fields_(std::make_shared<const Attributes>()) {}
Record::Record(std::string type, Attributes fields)
    : type_(std::move(type)), fields_(std::make_shared<const Attributes>(std::move(fields))) {}
bool Record::operator==(const Record& o) const {
  return type_ == o.type_ && fields() == o.fields();
}

std::string attr_to_string(const AttrValue& value) {
  return std::visit(
      [](const auto& v) -> std::string {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, int64_t>) {
          return std::to_string(v);
        } else if constexpr (std::is_same_v<T, double>) {
          return double_text(v);
        } else if constexpr (std::is_same_v<T, bool>) {
          return v ? "true" : "false";
        } else if constexpr (std::is_same_v<T, std::string>) {
          return "\"" + v + "\"";
        } else if constexpr (std::is_same_v<T, std::vector<int64_t>>) {
          return to_string(Extents(v.begin(), v.end()));
        } else if constexpr (std::is_same_v<T, DType>) {
          return dtype_name(v);
        } else if constexpr (std::is_same_v<T, Shape>) {
          return to_string(v);
        } else if constexpr (std::is_same_v<T, std::vector<double>>) {
          std::string s = "[";
          for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + double_text(v[i]);
          return s + "]";
        } else if constexpr (std::is_same_v<T, Record>) {
          return v.type() + "{" + v.fields().str() + "}";
        } else {
          return std::string("tensor<") + dtype_name(v.dtype()) + to_string(v.shape()) + ">";
        }
      },
      value);
}

std::string Attributes::str() const {
  std::string s;
  for (const auto& [name, value] : map_) {
    if (!s.empty()) s += ", ";
    s += name + "=" + attr_to_string(value);
  }
  return s;
}

static bool same_tensor_data(const TensorData& a, const TensorData& b) {
  if (a.dtype() != b.dtype() || a.shape() != b.shape()) return false;
  if (a.buffer() == b.buffer() && a.offset() == b.offset() && a.strides() == b.strides())
    return true;
  TensorData ha = a.to_host().contiguous(), hb = b.to_host().contiguous();
  return std::memcmp(ha.data(), hb.data(), ha.nbytes()) == 0;
}

bool Attributes::operator==(const Attributes& o) const {
  if (map_.size() != o.map_.size()) return false;
  for (auto a = map_.begin(), b = o.map_.begin(); a != map_.end(); ++a, ++b) {
    if (a->first != b->first || a->second.index() != b->second.index()) return false;
    bool same = std::visit(
        [&](const auto& va) {
          using T = std::decay_t<decltype(va)>;
          const T& vb = std::get<T>(b->second);
          if constexpr (std::is_same_v<T, TensorData>) {
            return same_tensor_data(va, vb);
          } else {
            return va == vb;
          }
        },
        a->second);
    if (!same) return false;
  }
  return true;
}

}  // namespace loom
