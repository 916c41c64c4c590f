// In-place state: assign(var, slice_update(read(var), update, starts)) writes only the
// update into the variable's buffer, and gives the same values as the copying form.
#include "test_util.h"

namespace loom {

struct KvAppend {
  Graph g;
  Executable exe;
  static constexpr int64_t kCapacity = 128, kWidth = 16;

  explicit KvAppend(bool in_place) {
    Tensor cache = g.variable("cache", TensorData::zeros(DType::f32, {kCapacity, kWidth}));
    Tensor row = g.placeholder("row", {1, kWidth});
    Tensor pos = g.placeholder("pos", {2}, DType::i32);
    Tensor updated = slice_update(g.read(cache), row, pos);
    g.assign(cache, updated);
    // A reader of the updated cache: the sum of every row so far.
    Tensor total = sum(updated, {0});
    CompileOptions options;
    options.outputs = {total};
    if (!in_place) options.disabled_passes = {"inplace_state"};
    exe = compile(g, options);
  }

  TensorData step(int32_t position, const TensorData& row) {
    auto pos = TensorData::from_vector<int32_t>({position, 0}, {2});
    return exe.run({{"row", row}, {"pos", pos}})[0];
  }
};

TEST(KvCache, AppendInPlaceMovesOnlyTheUpdate) {
  KvAppend in_place(true), copying(false);
  EXPECT_EQ(in_place.exe.dump().find("assign"), std::string::npos) << in_place.exe.dump();
  EXPECT_NE(in_place.exe.dump().find("slice_update_inplace"), std::string::npos);
  EXPECT_NE(copying.exe.dump().find("assign"), std::string::npos);

  const void* buffer = in_place.exe.variables().get("cache").data();
  std::vector<double> reference(size_t(KvAppend::kWidth), 0.0);
  size_t row_bytes = KvAppend::kWidth * sizeof(float);
  for (int32_t step = 0; step < 100; ++step) {
    auto row = testing::random_tensor(DType::f32, {1, KvAppend::kWidth});
    auto got = in_place.step(step, row);
    auto want = copying.step(step, row);
    auto r = row.to_vector<float>();
    for (size_t i = 0; i < r.size(); ++i) reference[i] += r[i];
    // A running f32 sum of step + 1 terms in [-1, 1).
    testing::expect_close(got, reference, testing::accumulation_tolerance(DType::f32, step + 1),
                          "step " + std::to_string(step));
    EXPECT_EQ(got.to_vector<float>(), want.to_vector<float>());
    EXPECT_EQ(in_place.exe.variables().get("cache").data(), buffer);
    // Kernel bytes: the row into the cache, plus the [kWidth] sum; never the whole cache.
    EXPECT_EQ(in_place.exe.last_run_stats().bytes_written, row_bytes + row_bytes);
    EXPECT_GE(copying.exe.last_run_stats().bytes_written,
              size_t(KvAppend::kCapacity * KvAppend::kWidth * sizeof(float)));
  }
  auto cache = in_place.exe.variables().get("cache").to_vector<float>();
  auto other = copying.exe.variables().get("cache").to_vector<float>();
  EXPECT_EQ(cache, other);
  // Rows past the last step are untouched.
  for (int64_t i = 100 * KvAppend::kWidth; i < KvAppend::kCapacity * KvAppend::kWidth; ++i)
    EXPECT_EQ(cache[size_t(i)], 0.f);
}

TEST(KvCache, NotInPlaceWhenTheOldValueIsReadElsewhere) {
  Graph g;
  Tensor cache = g.variable("cache", TensorData::zeros(DType::f32, {4, 2}));
  Tensor row = g.placeholder("row", {1, 2});
  Tensor old_sum = sum(g.read(cache));
  g.assign(cache, slice_update(g.read(cache), row, std::vector<int64_t>{1, 0}));
  CompileOptions options;
  options.outputs = {old_sum};
  options.disabled_passes = {"common_subexpressions"};
  Executable exe = compile(g, options);
  EXPECT_EQ(exe.dump().find("slice_update_inplace"), std::string::npos) << exe.dump();
  auto r = TensorData::from_vector<float>({1, 2}, {1, 2});
  EXPECT_EQ(exe.run({{"row", r}})[0].to_vector<float>()[0], 0.f);
  EXPECT_EQ(exe.run({{"row", r}})[0].to_vector<float>()[0], 3.f);
}

}  // namespace loom
