#include "output_pool.h"

namespace loom::python {

// Only the pool holds the array: Python has dropped every reference and every view. A
// bfloat16 array's inner uint16 array is held by the pool and by the array itself (its
// base); NumPy points views of views at the inner array, so more references mean a view.
bool NumpyOutputPool::Entry::free() const {
  if (!array.is_valid() || Py_REFCNT(array.ptr()) != 1) return false;
  return !inner.is_valid() || Py_REFCNT(inner.ptr()) == 2;
}

void NumpyOutputPool::offer(std::vector<TensorData>& outputs) {
  outputs.assign(slots_.size(), TensorData());
  for (size_t i = 0; i < slots_.size(); ++i) {
    Slot& slot = slots_[i];
    slot.offered = -1;
    for (int e = 0; e < int(slot.entries.size()); ++e) {
      if (slot.entries[size_t(e)].free()) {
        slot.offered = e;
        outputs[i] = slot.entries[size_t(e)].data;
        break;
      }
    }
  }
}

nb::list NumpyOutputPool::collect(const std::vector<TensorData>& outputs) {
  if (slots_.size() != outputs.size()) slots_.resize(outputs.size());
  nb::list results;
  for (size_t i = 0; i < outputs.size(); ++i) {
    Slot& slot = slots_[i];
    const TensorData& out = outputs[i];
    if (slot.offered >= 0) {
      Entry& entry = slot.entries[size_t(slot.offered)];
      if (entry.data.data() == out.data() && entry.data.shape() == out.shape() &&
          entry.data.dtype() == out.dtype() && entry.data.strides() == out.strides()) {
        results.append(entry.array);
        continue;
      }
    }
    int victim = slot.offered;
    if (victim < 0) {
      victim = slot.next;
      slot.next = (slot.next + 1) % int(slot.entries.size());
    }
    nb::object array = tensor_data_to_numpy(out);
    nb::object inner;
    if (out.dtype() == DType::bf16) inner = array.attr("base");
    slot.entries[size_t(victim)] = Entry{out, array, inner};
    results.append(array);
  }
  for (Slot& slot : slots_) slot.offered = -1;
  return results;
}

}  // namespace loom::python
