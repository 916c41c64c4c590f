#include "loom/shape.h"

#include "loom/error.h"

namespace loom {

template <class Seq>
static std::string join(const Seq& items) {
  std::string s = "[";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) s += ", ";
    if constexpr (std::is_same_v<typename Seq::value_type, Dim>) {
      s += items[i].str();
    } else {
      s += std::to_string(items[i]);
    }
  }
  return s + "]";
}

std::string to_string(const Shape& shape) { return join(shape); }
std::string to_string(const Extents& extents) { return join(extents); }

bool is_static(const Shape& shape) {
  for (const auto& d : shape)
    if (!d.is_static()) return false;
  return true;
}

Extents static_extents(const Shape& shape) {
  Extents e;
  e.reserve(shape.size());
  for (const auto& d : shape) {
    if (!d.is_static())
      fail(ErrorKind::shape,
           "shape " + to_string(shape) + " has unbound symbolic dim '" + d.symbol() + "'");
    e.push_back(d.value());
  }
  return e;
}

Shape to_shape(const Extents& extents) { return Shape(extents.begin(), extents.end()); }

int64_t numel(const Extents& extents) {
  // No tensor Loom can hold has 2^56 elements; larger products are overflow or bad input.
  constexpr int64_t kMaxElements = int64_t(1) << 56;
  int64_t n = 1;
  for (auto e : extents) {
    if (e < 0) fail(ErrorKind::shape, "negative extent in shape " + to_string(extents));
    if (__builtin_mul_overflow(n, e, &n) || n > kMaxElements)
      fail(ErrorKind::shape, "shape " + to_string(extents) + " has too many elements");
  }
  return n;
}

Strides contiguous_strides(const Extents& extents) {
  Strides s(extents.size());
  int64_t stride = 1;
  for (size_t i = extents.size(); i-- > 0;) {
    s[i] = stride;
    stride *= extents[i];
  }
  return s;
}

int normalize_axis(int64_t axis, int rank, const char* op) {
  int64_t a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank)
    fail(ErrorKind::shape, std::string(op) + ": axis " + std::to_string(axis) +
                               " is out of range for rank " + std::to_string(rank));
  return int(a);
}

}  // namespace loom
