// The NumPy arrays of an executable's recent results. A run offers each output the buffer
// of an earlier result that Python has dropped; when the run writes into it, the same array
// object comes back. A steady-state loop (`out = exe.run(feeds)`) then makes no buffer and
// no array: two results per output alternate, one held by the caller, one free.
#pragma once

#include <array>
#include <vector>

#include "bindings.h"

namespace loom::python {

class NumpyOutputPool {
 public:
  // Before a run: outputs[i] is a free earlier buffer of output i, or empty.
  void offer(std::vector<TensorData>& outputs);
  // After the run: one array per output, reusing the offered array where the run wrote
  // into the offered buffer.
  nb::list collect(const std::vector<TensorData>& outputs);

 private:
  struct Entry {
    TensorData data;
    nb::object array;
    // For bfloat16, `array` is a view of a uint16 array that owns the memory; views that
    // users make of `array` (slices) reference this inner array, not `array`.
    nb::object inner;
    bool free() const;
  };
  struct Slot {
    std::array<Entry, 2> entries;
    int offered = -1;
    int next = 0;  // the entry a new array replaces when none is free
  };
  std::vector<Slot> slots_;
};

}  // namespace loom::python
