// Exact references for the data-movement ops (shape, slice, gather): they copy elements,
// so each output element must equal, bit for bit, the input element an index map picks.
#pragma once

#include <cstring>
#include <string>
#include <vector>

#include "test_util.h"

namespace loom::testing {

// The dtypes every data-movement op is tested on.
inline const std::vector<DType> kMoveDTypes = {DType::f32, DType::f16, DType::bf16,
                                               DType::i32, DType::i64, DType::boolean};

// Random values spread enough that a wrong index shows (bool: about half true).
inline TensorData random_data(DType dtype, Extents shape) {
  return dtype == DType::boolean ? random_tensor(dtype, std::move(shape), -1.f, 1.f)
                                 : random_tensor(dtype, std::move(shape), -100.f, 100.f);
}

inline size_t element_size(DType dtype) { return size_t(dtype_info(dtype).bits / 8); }

inline std::vector<uint8_t> bytes_of(const TensorData& t) {
  TensorData host = t.to_host().contiguous();
  const auto* p = static_cast<const uint8_t*>(host.data());
  return std::vector<uint8_t>(p, p + host.nbytes());
}

// Output element i is input element source(i), or zero bytes when source(i) < 0.
template <class SourceFn>
std::vector<uint8_t> pick_elements(const TensorData& input, int64_t count, SourceFn source) {
  size_t es = element_size(input.dtype());
  std::vector<uint8_t> in = bytes_of(input);
  std::vector<uint8_t> out(size_t(count) * es, 0);
  for (int64_t i = 0; i < count; ++i) {
    int64_t s = source(i);
    if (s >= 0) std::memcpy(&out[size_t(i) * es], &in[size_t(s) * es], es);
  }
  return out;
}

inline void expect_same_elements(const TensorData& got, const Extents& want_shape,
                                 const std::vector<uint8_t>& want, const std::string& what) {
  ASSERT_EQ(got.shape(), want_shape) << what;
  std::vector<uint8_t> g = bytes_of(got);
  ASSERT_EQ(g.size(), want.size()) << what;
  size_t es = element_size(got.dtype());
  for (size_t i = 0; i < g.size(); i += es)
    ASSERT_EQ(std::memcmp(&g[i], &want[i], es), 0)
        << what << ": first wrong element at " << i / es << " of " << to_string(want_shape);
}

// Flat row-major index of `idx` in `shape`.
inline int64_t ravel(const std::vector<int64_t>& idx, const Extents& shape) {
  int64_t flat = 0;
  for (size_t d = 0; d < shape.size(); ++d) flat = flat * shape[d] + idx[d];
  return flat;
}

// Runs `fn` and checks it throws loom::Error of `kind` whose message holds every `parts`.
template <class Fn>
void expect_error(Fn&& fn, ErrorKind kind, const std::vector<std::string>& parts) {
  try {
    fn();
    ADD_FAILURE() << "expected loom::Error(" << error_kind_name(kind) << ")";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), kind) << e.what();
    for (const auto& p : parts)
      EXPECT_NE(std::string(e.what()).find(p), std::string::npos)
          << "message '" << e.what() << "' lacks '" << p << "'";
  }
}

}  // namespace loom::testing
