// Dim (a number or a named symbol), Shape, and concrete Extents.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace loom {

class Dim {
 public:
  Dim(int64_t value = 0) : value_(value) {}                            // NOLINT: implicit by design
  Dim(int value) : value_(value) {}                                    // NOLINT
  Dim(const char* symbol) : value_(-1), symbol_(symbol) {}             // NOLINT
  Dim(std::string symbol) : value_(-1), symbol_(std::move(symbol)) {}  // NOLINT
  // A dim whose size is known only once the symbols are bound.
  static Dim unknown() { return Dim(std::string("?")); }

  bool is_static() const { return symbol_.empty(); }
  bool is_symbol() const { return !symbol_.empty(); }
  int64_t value() const { return value_; }
  const std::string& symbol() const { return symbol_; }
  std::string str() const { return is_static() ? std::to_string(value_) : symbol_; }
  bool operator==(const Dim& o) const { return value_ == o.value_ && symbol_ == o.symbol_; }
  bool operator!=(const Dim& o) const { return !(*this == o); }

 private:
  int64_t value_;
  std::string symbol_;
};

using Shape = std::vector<Dim>;
using Extents = std::vector<int64_t>;
using Strides = std::vector<int64_t>;  // in elements
using SymbolBinding = std::map<std::string, int64_t>;

std::string to_string(const Shape& shape);
std::string to_string(const Extents& extents);
bool is_static(const Shape& shape);
// Throws loom::Error(shape) when a dim is symbolic.
Extents static_extents(const Shape& shape);
Shape to_shape(const Extents& extents);
int64_t numel(const Extents& extents);
Strides contiguous_strides(const Extents& extents);
// Normalises a possibly negative axis; throws loom::Error(shape) naming `op` when out of range.
int normalize_axis(int64_t axis, int rank, const char* op);

}  // namespace loom
