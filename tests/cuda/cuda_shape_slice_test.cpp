// Data movement and position ops on CUDA against the CPU backend (bit-exact for data
// movement): transpose, broadcast_to, concat, split, slice, dynamic_slice, slice_update,
// gather, arange and rope, on float, integer and bool dtypes.
#include "cuda/cuda_test_util.h"

namespace loom {
namespace {

using testing::expect_gpu_matches_cpu;
using testing::random_tensor;

const std::vector<DType> kMoveDTypes = {DType::f32, DType::f16,     DType::bf16, DType::i32,
                                        DType::i64, DType::boolean, DType::u8};

TensorData random_data(DType dtype, Extents shape) {
  return random_tensor(dtype, std::move(shape), dtype == DType::u8 ? 0.f : -100.f, 100.f);
}

TEST(CudaShape, TransposeBroadcastConcatSplit) {
  LOOM_REQUIRE_CUDA();
  for (DType dtype : kMoveDTypes) {
    std::string d = dtype_name(dtype);
    {
      Graph g;
      Tensor x = g.placeholder("x", {2, 3, 4, 5}, dtype);
      expect_gpu_matches_cpu(g,
                             {transpose(x, {3, 1, 0, 2}), transpose(x), permute(x, {0, 2, 1, 3})},
                             {{"x", random_data(dtype, {2, 3, 4, 5})}}, "transpose " + d);
    }
    {
      Graph g;
      Tensor x = g.placeholder("x", {64, 96}, dtype);
      expect_gpu_matches_cpu(g, {transpose(x, {1, 0})}, {{"x", random_data(dtype, {64, 96})}},
                             "transpose 2-D " + d);
    }
    {  // the last two dims swapped through a shared-memory tile; edges not multiples of 32
      Graph g;
      Tensor x = g.placeholder("x", {3, 70, 45}, dtype);
      expect_gpu_matches_cpu(g, {transpose(x, {0, 2, 1}), transpose(x, {-3, -1, -2})},
                             {{"x", random_data(dtype, {3, 70, 45})}}, "transpose last two " + d);
    }
    {
      Graph g;
      Tensor x = g.placeholder("x", {3, 1, 5}, dtype);
      expect_gpu_matches_cpu(g, {broadcast_to(x, {2, 3, 4, 5})},
                             {{"x", random_data(dtype, {3, 1, 5})}}, "broadcast_to " + d);
    }
    {
      Graph g;
      Tensor a = g.placeholder("a", {2, 3, 8}, dtype);
      Tensor b = g.placeholder("b", {2, 5, 8}, dtype);
      Tensor c = g.placeholder("c", {2, 1, 8}, dtype);
      Tensor x = g.placeholder("x", {4, 12, 3}, dtype);
      std::vector<Tensor> outs = {concat({a, b, c}, 1), concat({a, a}, -1)};
      for (const Tensor& t : split(x, {5, 4, 3}, 1)) outs.push_back(t);
      for (const Tensor& t : split(x, 2, 0)) outs.push_back(t);
      expect_gpu_matches_cpu(g, outs,
                             {{"a", random_data(dtype, {2, 3, 8})},
                              {"b", random_data(dtype, {2, 5, 8})},
                              {"c", random_data(dtype, {2, 1, 8})},
                              {"x", random_data(dtype, {4, 12, 3})}},
                             "concat/split " + d);
    }
  }
}

TEST(CudaSlice, StaticSlices) {
  LOOM_REQUIRE_CUDA();
  for (DType dtype : kMoveDTypes) {
    Graph g;
    Tensor x = g.placeholder("x", {9, 10, 11}, dtype);
    std::vector<Tensor> outs = {
        slice(x, {0}, {2}, {7}),
        slice(x, {1, 2}, {-8, 1}, {100, 11}, {2, 3}),
        slice(x, {2}, {-1}, {11}),
        slice(x, {0, 1, 2}, {1, 0, 4}, {9, 10, 8}, {3, 1, 1}),
    };
    expect_gpu_matches_cpu(g, outs, {{"x", random_data(dtype, {9, 10, 11})}},
                           std::string("slice ") + dtype_name(dtype));
  }
}

TEST(CudaSlice, DynamicSliceAndSliceUpdateWithClampedStarts) {
  LOOM_REQUIRE_CUDA();
  for (DType dtype : kMoveDTypes)
    for (DType index_dtype : {DType::i32, DType::i64})
      for (std::vector<float> starts : {std::vector<float>{1, 2, 3}, std::vector<float>{-4, 50, 0},
                                        std::vector<float>{7, 0, 9}}) {
        Graph g;
        Tensor x = g.placeholder("x", {8, 6, 12}, dtype);
        Tensor s = g.placeholder("s", {3}, index_dtype);
        Tensor s2 = g.placeholder("s2", {2}, index_dtype);
        Tensor u = g.placeholder("u", {3, 6, 4}, dtype);
        std::vector<Tensor> outs = {slice(x, s2, {0, 2}, {2, 5}), slice_update(x, u, s)};
        Feeds feeds{{"x", random_data(dtype, {8, 6, 12})},
                    {"u", random_data(dtype, {3, 6, 4})},
                    {"s", TensorData::from_floats(starts, index_dtype, {3})},
                    {"s2", TensorData::from_floats({starts[0], starts[2]}, index_dtype, {2})}};
        expect_gpu_matches_cpu(g, outs, feeds,
                               std::string("dynamic slice/update ") + dtype_name(dtype) + " " +
                                   dtype_name(index_dtype) + " starts " +
                                   std::to_string(starts[0]));
      }
}

TEST(CudaSlice, Gather) {
  LOOM_REQUIRE_CUDA();
  for (DType dtype : kMoveDTypes)
    for (DType index_dtype : {DType::i32, DType::i64}) {
      Graph g;
      Tensor table = g.placeholder("t", {10, 4, 16}, dtype);
      Tensor idx = g.placeholder("i", {2, 5}, index_dtype);
      Tensor odd = g.placeholder("o", {10, 3}, dtype);
      std::vector<float> indices = {0, 9, 3, -1, 10, 4, 4, 2, 100, 1};  // some out of range
      expect_gpu_matches_cpu(
          g, {gather(table, idx), gather(table, idx, 1), gather(odd, idx, 0)},
          {{"t", random_data(dtype, {10, 4, 16})},
           {"o", random_data(dtype, {10, 3})},
           {"i", TensorData::from_floats(indices, index_dtype, {2, 5})}},
          std::string("gather ") + dtype_name(dtype) + " " + dtype_name(index_dtype));
    }
}

TEST(CudaPosition, Arange) {
  LOOM_REQUIRE_CUDA();
  for (DType dtype : {DType::f32, DType::f16, DType::bf16, DType::i32, DType::i64}) {
    Graph g;
    Tensor a = arange(g, 3, 200, 1.5, dtype);
    Tensor b = arange(g, 0, 1000, 1, dtype);
    // Without folding, so that the device computes them.
    expect_gpu_matches_cpu(g, {a, b}, {}, std::string("arange ") + dtype_name(dtype), std::nullopt,
                           {"constant_folding"});
  }
}

TEST(CudaPosition, Rope) {
  LOOM_REQUIRE_CUDA();
  for (DType dtype : testing::kFloatDTypes)
    for (bool interleaved : {false, true})
      for (int64_t dims : {0, 32})
        for (float offset : {0.f, 37.f, 3000.f}) {
          Graph g;
          Tensor x = g.placeholder("x", {2, 3, 7, 64}, dtype);
          Tensor off = g.placeholder("off", {1}, DType::i32);
          RopeOptions o;
          o.interleaved = interleaved;
          o.dims = dims;
          o.base = 10000.0;
          o.scale = 1.0;
          expect_gpu_matches_cpu(g, {rope(x, off, o)},
                                 {{"x", random_tensor(dtype, {2, 3, 7, 64})},
                                  {"off", TensorData::from_floats({offset}, DType::i32, {1})}},
                                 std::string("rope ") + dtype_name(dtype) +
                                     (interleaved ? " interleaved" : " halves") + " dims " +
                                     std::to_string(dims) + " offset " + std::to_string(offset));
        }
}

}  // namespace
}  // namespace loom
