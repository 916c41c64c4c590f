// Typed node attributes: what an op is told besides its inputs (axes, eps, dtypes, ...).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "loom/dtype.h"
#include "loom/shape.h"
#include "loom/tensor_data.h"

namespace loom {

class Attributes;

// A small named record of typed fields (a quantization scheme, attention options): one
// attribute whose fields are checked against the record type's specs (see op_schema.h).
// Immutable once made, so copies share the fields.
class Record {
 public:
  Record();
  Record(std::string type, Attributes fields);
  const std::string& type() const { return type_; }
  const Attributes& fields() const { return *fields_; }
  bool operator==(const Record& o) const;

 private:
  std::string type_;
  std::shared_ptr<const Attributes> fields_;
};

using AttrValue = std::variant<int64_t, double, bool, std::string, std::vector<int64_t>, DType,
                               Shape, TensorData, std::vector<double>, Record>;

class Attributes {
 public:
  Attributes() = default;
  Attributes(std::initializer_list<std::pair<const std::string, AttrValue>> items) : map_(items) {}

  bool has(const std::string& name) const { return map_.count(name) != 0; }
  void set(const std::string& name, AttrValue value) { map_[name] = std::move(value); }
  // Throws loom::Error(value) when missing or of another type (bad input to add_node).
  // Graph::add_node fills every attribute that has a default, so kernels and inference need
  // no fallbacks.
  template <class T>
  const T& get(const std::string& name) const;
  template <class T>
  T get_or(const std::string& name, T fallback) const {
    return has(name) ? get<T>(name) : fallback;
  }
  const std::map<std::string, AttrValue>& items() const { return map_; }
  // A stable text form, used by the dump and by common-subexpression elimination.
  std::string str() const;
  bool operator==(const Attributes& o) const;

 private:
  std::map<std::string, AttrValue> map_;
};

std::string attr_to_string(const AttrValue& value);

}  // namespace loom
