#include "ops/shape_inference.h"

#include <algorithm>

namespace loom::ops {

Shape broadcast_shapes(const ir::InferContext& ctx, const Shape& a, const Shape& b) {
  size_t rank = std::max(a.size(), b.size());
  Shape out(rank);
  for (size_t i = 0; i < rank; ++i) {
    const Dim one(int64_t(1));
    const Dim& da = i < rank - a.size() ? one : a[i - (rank - a.size())];
    const Dim& db = i < rank - b.size() ? one : b[i - (rank - b.size())];
    if (da == db || db == one) {
      out[i] = da;
    } else if (da == one) {
      out[i] = db;
    } else if (da.is_static() && db.is_static()) {
      ctx.fail(ErrorKind::shape, "shapes " + to_string(a) + " and " + to_string(b) +
                                     " do not broadcast (dim " + da.str() + " vs " + db.str() +
                                     ")");
    } else {
      // A symbol against another size: known only when bound.
      out[i] = Dim::unknown();
    }
  }
  return out;
}

int64_t static_numel(const Shape& shape) {
  int64_t n = 1;
  for (const auto& d : shape) {
    if (!d.is_static()) return -1;
    n *= d.value();
  }
  return n;
}

std::vector<int> normalize_axes(const ir::InferContext& ctx, const std::vector<int64_t>& axes,
                                int rank, bool empty_means_all) {
  std::vector<int> out;
  if (axes.empty() && empty_means_all) {
    for (int i = 0; i < rank; ++i) out.push_back(i);
    return out;
  }
  for (auto a : axes) {
    int64_t n = a < 0 ? a + rank : a;
    if (n < 0 || n >= rank)
      ctx.fail(ErrorKind::shape,
               "axis " + std::to_string(a) + " is out of range for rank " + std::to_string(rank));
    if (std::find(out.begin(), out.end(), int(n)) != out.end())
      ctx.fail(ErrorKind::shape, "axis " + std::to_string(a) + " repeated");
    out.push_back(int(n));
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace loom::ops
