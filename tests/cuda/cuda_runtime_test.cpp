// The CUDA backend under the runtime: transfers, the in-place KV append, CUDA graph replay
// against eager runs with changing positions, steady-state runs without allocation, and the
// errors (out of memory, a failed capture that leaves the stream usable).
#include <atomic>
#include <cstring>
#include <thread>

#include "backends/backend.h"
#include "cuda/cuda_test_util.h"

namespace loom {
namespace {

using testing::random_tensor;

// A real GPU even under LOOM_CUDA_TESTS_ON_CPU=1; a failure under LOOM_REQUIRE_GPU=1.
#define LOOM_REQUIRE_REAL_CUDA()                                  \
  do {                                                            \
    if (!::loom::cuda_available()) {                              \
      if (::loom::testing::gpu_required())                        \
        FAIL() << "LOOM_REQUIRE_GPU=1 but Loom sees no CUDA GPU"; \
      GTEST_SKIP() << "no CUDA GPU";                              \
    }                                                             \
  } while (0)

std::vector<uint8_t> host_bytes(const TensorData& t) {
  TensorData h = t.to_host().contiguous();
  const auto* p = static_cast<const uint8_t*>(h.data());
  return std::vector<uint8_t>(p, p + h.nbytes());
}

TEST(CudaRuntime, TransfersRoundTrip) {
  LOOM_REQUIRE_REAL_CUDA();
  TensorData host = random_tensor(DType::f16, {1000, 3});
  TensorData dev = host.to(Device::cuda());
  EXPECT_EQ(dev.device(), Device::cuda());
  EXPECT_EQ(host_bytes(dev), host_bytes(host));
  // A transposed (non-contiguous) host view arrives contiguous and in the right order.
  TensorData t = host.view({3, 1000}, {1, 3}, 0);
  EXPECT_EQ(host_bytes(t.to(Device::cuda())), host_bytes(t.contiguous()));
  TensorData copy = dev.clone();
  EXPECT_NE(copy.data(), dev.data());
  EXPECT_EQ(host_bytes(copy), host_bytes(host));
}

TEST(CudaRuntime, KvAppendIsInPlace) {
  LOOM_REQUIRE_CUDA();
  const int64_t slots = 16, width = 8;
  for (DType dtype : {DType::f32, DType::bf16}) {
    Graph g;
    Tensor cache = g.variable("k", TensorData::zeros(dtype, {1, slots, width}));
    Tensor update = g.placeholder("u", {1, 1, width}, dtype);
    Tensor starts = g.placeholder("s", {3}, DType::i64);
    g.assign(cache, slice_update(g.read(cache), update, starts));
    CompileOptions options;
    options.device = testing::gpu();
    Executable exe = compile(g, options);
    EXPECT_NE(exe.dump().find("slice_update_inplace"), std::string::npos) << exe.dump();
    const void* buffer = exe.variables().get("k").data();
    std::vector<float> expected(size_t(slots * width), 0.f);
    for (int64_t step = 0; step < slots; ++step) {
      TensorData u = random_tensor(dtype, {1, 1, width});
      std::vector<float> uf = u.to_floats();
      std::copy(uf.begin(), uf.end(), expected.begin() + step * width);
      exe.run({{"u", u}, {"s", TensorData::from_vector<int64_t>({0, step, 0}, {3})}});
      ASSERT_EQ(exe.variables().get("k").data(), buffer) << "the variable moved at step " << step;
    }
    std::vector<float> got = exe.variables().get("k").to_floats();
    EXPECT_EQ(got, expected) << dtype_name(dtype);
  }
}

// One decode step: project x, rotate it at `pos`, append it to a KV cache at `pos`, attend
// over the cache. Positions change every step, so a replayed graph must read them on the
// device.
struct DecodeGraph {
  Graph g;
  Tensor out;
  explicit DecodeGraph(DType dtype) {
    const int64_t slots = 32, width = 64;
    Tensor x = g.placeholder("x", {1, 1, width}, dtype);
    Tensor pos = g.placeholder("pos", {1}, DType::i32);
    Tensor starts = g.placeholder("starts", {3}, DType::i32);
    Tensor w = g.variable("w", random_tensor(dtype, {width, width}, -0.2f, 0.2f));
    Tensor k_cache = g.variable("k", TensorData::zeros(dtype, {1, slots, width}));
    Tensor v_cache = g.variable("v", TensorData::zeros(dtype, {1, slots, width}));
    Tensor q = rope(matmul(x, g.read(w)), pos);
    Tensor k = rope(rms_norm(x), pos);
    Tensor history = g.variable("h", TensorData::zeros(dtype, {1, slots, width}));
    Tensor keys = slice_update(g.read(k_cache), k, starts);
    g.assign(k_cache, keys);
    Tensor values = slice_update(g.read(v_cache), silu(x), starts);
    g.assign(v_cache, values);
    // Nothing else reads the history, so its append runs in place.
    g.assign(history, slice_update(g.read(history), q, starts));
    Tensor scores = softmax(matmul(q, keys, false, true) * 0.125, -1);
    out = matmul(scores, values) + gelu(q);
  }
};

TEST(CudaRuntime, GraphReplayEqualsEagerOverManySteps) {
  LOOM_REQUIRE_CUDA();
  for (DType dtype : {DType::f32, DType::f16}) {
    DecodeGraph graph(dtype);
    CompileOptions replayed, eager, cpu;
    replayed.outputs = eager.outputs = cpu.outputs = {graph.out};
    replayed.device = eager.device = testing::gpu();
    eager.cuda_graphs = false;
    Executable a = compile(graph.g, replayed), b = compile(graph.g, eager),
               c = compile(graph.g, cpu);
    for (int step = 0; step < 50; ++step) {
      int32_t pos = (step * 7) % 32;
      Feeds feeds{{"x", random_tensor(dtype, {1, 1, 64})},
                  {"pos", TensorData::from_vector<int32_t>({pos}, {1})},
                  {"starts", TensorData::from_vector<int32_t>({0, pos, 0}, {3})}};
      TensorData ya = a.run(feeds).at(0), yb = b.run(feeds).at(0), yc = c.run(feeds).at(0);
      if (!testing::cuda_tests_on_cpu()) {
        EXPECT_EQ(a.last_run_stats().replayed_graph, step >= 1) << "step " << step;
      }
      EXPECT_FALSE(b.last_run_stats().replayed_graph);
      // Replay runs the same kernels as the eager run: bit-identical results.
      ASSERT_EQ(host_bytes(ya), host_bytes(yb)) << dtype_name(dtype) << " step " << step;
      // Against the CPU: matmuls over 64 and 32 terms and a softmax over 32, each rounded to
      // the dtype; an intermediate an ulp apart on the two devices carries through the chain
      // (four ops deep; the final add may cancel, so also absolutely).
      testing::Tolerance tol = testing::accumulation_tolerance(dtype, 64 + 32);
      tol.rtol += 4 * testing::epsilon_of(dtype);
      tol.atol += 4 * testing::epsilon_of(dtype);
      testing::expect_close(
          ya.to_host(), testing::to_doubles(yc), tol,
          std::string("vs CPU ") + dtype_name(dtype) + " step " + std::to_string(step));
    }
    EXPECT_EQ(host_bytes(a.variables().get("k")), host_bytes(b.variables().get("k")));
    EXPECT_EQ(host_bytes(a.variables().get("v")), host_bytes(b.variables().get("v")));
    EXPECT_EQ(host_bytes(a.variables().get("h")), host_bytes(b.variables().get("h")));
    EXPECT_NE(a.dump().find("slice_update_inplace"), std::string::npos) << a.dump();
  }
}

TEST(CudaRuntime, SteadyStateRunAllocatesNothing) {
  LOOM_REQUIRE_CUDA();
  DecodeGraph graph(DType::bf16);
  CompileOptions options;
  options.outputs = {graph.out};
  options.device = testing::gpu();
  Executable exe = compile(graph.g, options);
  Feeds feeds{{"x", random_tensor(DType::bf16, {1, 1, 64})},
              {"pos", TensorData::from_vector<int32_t>({3}, {1})},
              {"starts", TensorData::from_vector<int32_t>({0, 3, 0}, {3})}};
  std::vector<TensorData> outputs;
  for (int i = 0; i < 3; ++i) exe.run(feeds, outputs);  // plan, capture, first replay
  size_t before = allocation_count();
  const void* out_data = outputs.at(0).data();
  for (int i = 0; i < 10; ++i) exe.run(feeds, outputs);
  EXPECT_EQ(allocation_count(), before);
  EXPECT_EQ(outputs.at(0).data(), out_data);
}

TEST(CudaRuntime, DumpNamesCudaKernels) {
  LOOM_REQUIRE_REAL_CUDA();
  Graph g;
  Tensor a = g.placeholder("a", {4, 8}, DType::f16);
  Tensor b = g.placeholder("b", {8, 2}, DType::f16);
  CompileOptions options;
  options.device = Device::cuda();
  options.outputs = {softmax(matmul(a, b))};
  Executable exe = compile(g, options);
  exe.run({{"a", random_tensor(DType::f16, {4, 8})}, {"b", random_tensor(DType::f16, {8, 2})}});
  std::string dump = exe.dump();
  EXPECT_NE(dump.find("cuda.matmul.cublaslt"), std::string::npos) << dump;
  EXPECT_NE(dump.find("cuda.softmax"), std::string::npos) << dump;
}

TEST(CudaRuntime, OutOfMemoryIsAnError) {
  LOOM_REQUIRE_REAL_CUDA();
  try {
    TensorData huge = TensorData::empty(DType::f32, {int64_t(1) << 40}, Device::cuda());
    FAIL() << "allocating 4 TiB succeeded";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::device);
    std::string message = e.what();
    EXPECT_NE(message.find("out of memory"), std::string::npos) << message;
    EXPECT_NE(message.find("4398046511104 bytes"), std::string::npos) << message;
    EXPECT_NE(message.find("free"), std::string::npos) << message;
  }
  // The device still works afterwards.
  TensorData small = random_tensor(DType::f32, {1000});
  EXPECT_EQ(host_bytes(small.to(Device::cuda())), host_bytes(small));
}

TEST(CudaRuntime, FailedCaptureLeavesStreamUsable) {
  LOOM_REQUIRE_REAL_CUDA();
  Backend& b = backend_for(Device::cuda());
  ASSERT_TRUE(b.supports_graphs());
  void* stream = b.create_stream();
  TensorData host = random_tensor(DType::f32, {4096});
  TensorData src = host.to(Device::cuda());
  TensorData dst = TensorData::zeros(DType::f32, {4096}, Device::cuda());

  // Synchronising a capturing stream is illegal: capture fails, cleanly (no graph).
  ASSERT_TRUE(b.begin_capture(stream));
  EXPECT_THROW(b.synchronize(stream), Error);
  EXPECT_FALSE(b.end_capture(stream));
  // So is allocating while capturing.
  ASSERT_TRUE(b.begin_capture(stream));
  EXPECT_THROW(TensorData::empty(DType::f32, {16}, Device::cuda()), Error);
  (void)b.end_capture(stream);

  // The stream runs eagerly again.
  b.copy(dst.data(), Device::cuda(), src.data(), Device::cuda(), src.nbytes(), stream);
  b.synchronize(stream);
  EXPECT_EQ(host_bytes(dst), host_bytes(host));

  // And captures again: a captured copy replays.
  TensorData other = random_tensor(DType::f32, {4096});
  TensorData dst2 = TensorData::zeros(DType::f32, {4096}, Device::cuda());
  TensorData src2 = other.to(Device::cuda());
  ASSERT_TRUE(b.begin_capture(stream));
  b.copy(dst2.data(), Device::cuda(), src2.data(), Device::cuda(), src2.nbytes(), stream);
  std::shared_ptr<void> graph = b.end_capture(stream);
  ASSERT_TRUE(graph);
  b.replay(graph, stream);
  b.synchronize(stream);
  EXPECT_EQ(host_bytes(dst2), host_bytes(other));
  graph.reset();
  b.destroy_stream(stream);
}

TEST(CudaRuntime, SharedVariablesBetweenExecutables) {
  LOOM_REQUIRE_CUDA();
  // Prefill and decode share one store on the device: what one writes the other reads.
  Graph g;
  Tensor cache = g.variable("c", TensorData::zeros(DType::f32, {4, 8}));
  Tensor row = g.placeholder("row", {1, 8}, DType::f32);
  Tensor at = g.placeholder("at", {2}, DType::i32);
  g.assign(cache, slice_update(g.read(cache), row, at));
  Graph h;
  Tensor cache2 = h.variable("c", TensorData::zeros(DType::f32, {4, 8}));
  Tensor total = sum(h.read(cache2));
  auto store = std::make_shared<VariableStore>(testing::gpu());
  CompileOptions writer, reader;
  writer.device = reader.device = testing::gpu();
  writer.variables = reader.variables = store;
  reader.outputs = {total};
  Executable w = compile(g, writer), r = compile(h, reader);
  double expected = 0;
  for (int i = 0; i < 4; ++i) {
    TensorData values = random_tensor(DType::f32, {1, 8});
    for (float v : values.to_floats()) expected += v;
    w.run({{"row", values}, {"at", TensorData::from_vector<int32_t>({i, 0}, {2})}});
  }
  // A sum of 32 f32 values in [-1, 1).
  testing::expect_close(r.run({}).at(0).to_host(), {expected},
                        testing::accumulation_tolerance(DType::f32, 32), "sum of the shared cache");
}

}  // namespace
}  // namespace loom

namespace loom {

// Another thread allocating, copying and freeing device memory while this one captures a
// CUDA graph must not invalidate the capture (Loom never touches the legacy stream).
TEST(CudaRuntime, CaptureSurvivesOtherThreadsMemoryTraffic) {
  LOOM_REQUIRE_CUDA();
  if (testing::cuda_tests_on_cpu()) GTEST_SKIP() << "needs a real GPU";
  Graph g;
  Tensor x = g.placeholder("x", {1024});
  Tensor y = x;
  for (int i = 0; i < 50; ++i) y = tanh(y) * 0.5 + 0.25;
  CompileOptions options;
  options.device = Device::cuda();
  options.outputs = {y};
  std::atomic<bool> stop{false};
  std::thread traffic([&] {
    while (!stop.load()) {
      auto t = TensorData::empty(DType::f32, {4096}, Device::cuda());
      auto back = TensorData::zeros(DType::f32, {16}).to(Device::cuda()).to_host();
      (void)back;
    }
  });
  auto feed = testing::random_tensor(DType::f32, {1024});
  std::vector<float> first;
  bool replayed = false;
  for (int round = 0; round < 20; ++round) {
    Executable exe = compile(g, options);  // a fresh plan: run 2 captures
    for (int run = 0; run < 3; ++run) {
      auto out = exe.run({{"x", feed}})[0].to_vector<float>();
      if (first.empty()) first = out;
      EXPECT_EQ(out, first);
    }
    replayed |= exe.last_run_stats().replayed_graph;
    EXPECT_TRUE(exe.last_run_stats().replayed_graph) << "round " << round;
  }
  stop = true;
  traffic.join();
  EXPECT_TRUE(replayed);
}

}  // namespace loom
