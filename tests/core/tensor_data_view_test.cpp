// Strided host views made contiguous (the host half of TensorData::contiguous; the device
// half is in tests/cuda/cuda_stream_test.cpp), and the paths that take them: to(), clone(),
// Graph::constant, Graph::variable, VariableStore::set and a strided feed.
#include "backends/backend.h"
#include "test_util.h"

namespace loom {
namespace {

using testing::random_tensor;

std::vector<uint8_t> bytes_of(const TensorData& t) {
  EXPECT_TRUE(t.is_contiguous());
  const auto* p = static_cast<const uint8_t*>(t.data());
  return std::vector<uint8_t>(p, p + t.nbytes());
}

// The bytes a view selects from a contiguous base, by naive index arithmetic.
std::vector<uint8_t> view_bytes(const TensorData& base, const Extents& shape,
                                const Strides& strides, int64_t offset) {
  size_t elem = storage_bytes(base.dtype(), 1);
  const auto* p = static_cast<const uint8_t*>(base.data());
  std::vector<uint8_t> out;
  for (int64_t i = 0; i < numel(shape); ++i) {
    std::vector<int64_t> idx = testing::unravel(i, shape);
    int64_t at = offset;
    for (size_t d = 0; d < shape.size(); ++d) at += idx[d] * strides[d];
    out.insert(out.end(), p + at * int64_t(elem), p + (at + 1) * int64_t(elem));
  }
  return out;
}

struct ViewCase {
  const char* name;
  Extents base;
  Extents shape;
  Strides strides;
  int64_t offset;
};

TEST(TensorDataView, HostViewsBecomeContiguous) {
  Extents nine(9, 2);
  Strides reversed;
  for (int d = 0; d < 9; ++d) reversed.push_back(int64_t(1) << d);
  std::vector<ViewCase> cases = {{"transpose", {4, 5, 6}, {6, 5, 4}, {1, 6, 30}, 0},
                                 {"reversed rows", {4, 30}, {4, 30}, {-30, 1}, 90},
                                 {"broadcast", {120}, {3, 40}, {0, 3}, 1},
                                 {"nine dims", nine, nine, reversed, 0}};
  for (DType dtype : {DType::f32, DType::f16, DType::i8, DType::i64}) {
    for (const ViewCase& c : cases) {
      std::string what = std::string(dtype_name(dtype)) + " " + c.name;
      TensorData base = random_tensor(dtype, c.base, -50.f, 50.f);
      TensorData view = base.view(c.shape, c.strides, c.offset);
      ASSERT_FALSE(view.is_contiguous()) << what;
      std::vector<uint8_t> want = view_bytes(base, c.shape, c.strides, c.offset);
      EXPECT_EQ(bytes_of(view.contiguous()), want) << what;
      EXPECT_EQ(bytes_of(view.to_host()), want) << what << " (to_host)";
      EXPECT_EQ(bytes_of(view.clone()), want) << what << " (clone)";
      // The CPU backend's strided copy is the same gather.
      TensorData out = TensorData::empty(dtype, c.shape);
      backend_for(Device::cpu())
          .copy_strided(out.data(), view.data(), storage_bytes(dtype, 1), c.shape, c.strides,
                        nullptr);
      EXPECT_EQ(bytes_of(out), want) << what << " (Backend::copy_strided)";
    }
  }
}

TEST(TensorDataView, StridedHostValueForConstantVariableStoreAndFeed) {
  TensorData base = random_tensor(DType::f32, {4, 30});
  TensorData view = base.view({4, 30}, {-30, 1}, 90);
  std::vector<uint8_t> want = view_bytes(base, {4, 30}, {-30, 1}, 90);
  VariableStore store;
  store.declare("v", TensorData::zeros(DType::f32, {4, 30}));
  store.set("v", view);
  EXPECT_EQ(bytes_of(store.get("v")), want) << "VariableStore::set";
  Graph g;
  Tensor c = g.constant(view);
  Tensor v = g.variable("w", view);
  Tensor x = g.placeholder("x", {4, 30});
  Tensor zero = g.placeholder("zero", {4, 30});
  auto out = testing::run_once(g, {c + zero, g.read(v) + zero, x + zero},
                               {{"x", view}, {"zero", TensorData::zeros(DType::f32, {4, 30})}});
  EXPECT_EQ(bytes_of(out.at(0)), want) << "Graph::constant";
  EXPECT_EQ(bytes_of(out.at(1)), want) << "Graph::variable";
  EXPECT_EQ(bytes_of(out.at(2)), want) << "strided feed";
}

}  // namespace
}  // namespace loom
