// Binding feeds to placeholders: checks and the size of each symbol.
#include <algorithm>

#include "loom/error.h"
#include "runtime/executable_impl.h"

namespace loom {

// Checks every feed against its placeholder and records the size of each symbol. Messages
// are built only on failure, so a steady-state run allocates nothing here.
const std::vector<int64_t>& Executable::Impl::bind(const Feeds& feeds) {
  for (const auto& [name, data] : feeds) {
    if (!graph_placeholders.count(name)) {
      std::string known;
      for (const auto& p : graph_placeholders) known += (known.empty() ? "" : ", ") + p;
      fail(ErrorKind::value, "feed '" + name + "' matches no placeholder (placeholders: " +
                                 (known.empty() ? "none" : known) + ")");
    }
    if (!data.defined()) fail(ErrorKind::value, "feed '" + name + "' is empty");
  }
  bound.assign(symbols.size(), -1);
  for (const ir::Node* p : placeholders) {
    const ir::TensorType& declared = p->type();
    auto it = feeds.find(p->name);
    if (it == feeds.end())
      fail(ErrorKind::value,
           "missing feed for placeholder '" + p->name + "' (" + declared.str() + ")");
    const TensorData& data = it->second;
    auto mismatch = [&](ErrorKind kind, const std::string& why) {
      fail(kind, "feed '" + p->name + "' " + dtype_name(data.dtype()) + to_string(data.shape()) +
                     " does not fit placeholder " + declared.str() + ": " + why);
    };
    if (data.dtype() != declared.dtype) mismatch(ErrorKind::dtype, "wrong dtype");
    if (size_t(data.rank()) != declared.shape.size()) mismatch(ErrorKind::shape, "wrong rank");
    for (size_t d = 0; d < declared.shape.size(); ++d) {
      const Dim& dim = declared.shape[d];
      int64_t size = data.shape()[d];
      if (dim.is_static()) {
        if (dim.value() != size)
          mismatch(ErrorKind::shape, "dim " + std::to_string(d) + " must be " + dim.str());
        continue;
      }
      size_t s = size_t(std::find(symbols.begin(), symbols.end(), dim.symbol()) - symbols.begin());
      if (bound[s] < 0) {
        bound[s] = size;
      } else if (bound[s] != size) {
        std::string first;
        for (const ir::Node* q : placeholders)
          for (const auto& qd : q->type().shape)
            if (first.empty() && qd == dim) first = q->name;
        mismatch(ErrorKind::shape, "'" + dim.symbol() + "' is " + std::to_string(size) +
                                       " here but " + std::to_string(bound[s]) + " in feed '" +
                                       first + "'");
      }
    }
  }
  return bound;
}

}  // namespace loom
