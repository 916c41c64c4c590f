// A steady-state CUDA run (a replayed graph, feeds already on the GPU, output buffers reused)
// makes no host allocation: no message strings, no attribute copies, no vectors.
#include <atomic>
#include <cstdlib>
#include <new>

#include "cuda_test_util.h"

// GCC cannot see that this operator new is malloc-backed.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

// Counts every heap allocation of the process (this test binary).
static std::atomic<size_t> g_heap_allocations{0};
void* operator new(size_t size) {
  ++g_heap_allocations;
  if (void* p = std::malloc(size ? size : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }

namespace loom {

TEST(CudaSteadyState, ReplayedRunAllocatesNothingOnTheHost) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA GPU";
  Graph g;
  Tensor x = g.placeholder("x", {8, 64}, DType::f16);
  Tensor w = g.placeholder("w", {64, 32}, DType::f16);
  CompileOptions options;
  options.device = Device::cuda();
  options.outputs = {softmax(matmul(x, w), -1), x + 1.0};
  Executable exe = compile(g, options);
  Feeds feeds{{"x", testing::random_tensor(DType::f16, {8, 64}).to(Device::cuda())},
              {"w", testing::random_tensor(DType::f16, {64, 32}).to(Device::cuda())}};
  std::vector<TensorData> outputs;
  for (int r = 0; r < 3; ++r) exe.run(feeds, outputs);  // eager, captured, replayed
  ASSERT_TRUE(exe.last_run_stats().replayed_graph);
  size_t before = g_heap_allocations.load();
  for (int r = 0; r < 10; ++r) exe.run(feeds, outputs);
  EXPECT_EQ(g_heap_allocations.load() - before, 0u);
  EXPECT_TRUE(exe.last_run_stats().replayed_graph);
}

}  // namespace loom
