// The CUDA runtime's reliability: strided device views gathered on the device, non-blocking
// executable streams (another thread's legacy-stream use during a capture), handoffs of
// memory written on another library's stream, captures that fail without throwing or leaving
// the stream capturing, and the caller's current device left alone.
#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <thread>

#include "backends/backend.h"
#include "backends/cuda/cuda_backend.h"
#include "cuda/cuda_test_util.h"

namespace loom {
namespace {

using testing::random_tensor;

#define LOOM_REQUIRE_REAL_CUDA()                                  \
  do {                                                            \
    if (!::loom::cuda_available()) GTEST_SKIP() << "no CUDA GPU"; \
  } while (0)

int gpu_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return n;
}

std::vector<uint8_t> host_bytes(const TensorData& t) {
  TensorData h = t.to_host();
  EXPECT_TRUE(h.is_contiguous());
  const auto* p = static_cast<const uint8_t*>(h.data());
  return std::vector<uint8_t>(p, p + h.nbytes());
}

// The bytes a view selects from a contiguous host base, by naive index arithmetic.
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

// A transpose, reversed rows (negative stride), a broadcast (zero stride), and a bit-reversal
// permutation of nine dims, more than one strided-copy launch indexes.
std::vector<ViewCase> view_cases() {
  Extents nine(9, 2);
  Strides reversed;
  for (int d = 0; d < 9; ++d) reversed.push_back(int64_t(1) << d);
  return {{"transpose", {4, 5, 6}, {6, 5, 4}, {1, 6, 30}, 0},
          {"reversed rows", {4, 30}, {4, 30}, {-30, 1}, 90},
          {"broadcast", {120}, {3, 40}, {0, 3}, 1},
          {"nine dims", nine, nine, reversed, 0}};
}

// ---- 1. strided device views -----------------------------------------------------------

TEST(CudaStreams, StridedDeviceViewIsGatheredOnTheDevice) {
  LOOM_REQUIRE_REAL_CUDA();
  for (DType dtype : {DType::f32, DType::f16, DType::i8, DType::i64}) {
    for (const ViewCase& c : view_cases()) {
      std::string what = std::string(dtype_name(dtype)) + " " + c.name;
      TensorData host = random_tensor(dtype, c.base, -50.f, 50.f);
      TensorData view = host.to(Device::cuda()).view(c.shape, c.strides, c.offset);
      ASSERT_FALSE(view.is_contiguous()) << what;
      std::vector<uint8_t> want = view_bytes(host, c.shape, c.strides, c.offset);
      TensorData gathered = view.contiguous();  // recursed for ever before
      EXPECT_EQ(gathered.device(), Device::cuda()) << what;
      EXPECT_TRUE(gathered.is_contiguous()) << what;
      EXPECT_EQ(host_bytes(gathered), want) << what;
      EXPECT_EQ(host_bytes(view), want) << what << " (to_host)";
      EXPECT_EQ(host_bytes(view.clone()), want) << what << " (clone)";
      EXPECT_EQ(view.to_floats(), gathered.to_floats()) << what << " (to_floats)";
    }
  }
}

TEST(CudaStreams, StridedCudaFeedRuns) {
  LOOM_REQUIRE_REAL_CUDA();
  TensorData host = random_tensor(DType::f32, {4, 5, 6});
  TensorData view = host.to(Device::cuda()).view({6, 5, 4}, {1, 6, 30}, 0);
  std::vector<uint8_t> bytes = view_bytes(host, {6, 5, 4}, {1, 6, 30}, 0);
  std::vector<double> want(bytes.size() / 4);
  for (size_t i = 0; i < want.size(); ++i) {
    float v;
    std::memcpy(&v, bytes.data() + 4 * i, 4);
    want[i] = 2.0 * double(v);
  }
  Graph g;
  Tensor x = g.placeholder("x", {6, 5, 4});
  for (Device device : {Device::cuda(), Device::cpu()}) {
    CompileOptions options;
    options.device = device;
    options.outputs = {x * 2.0};
    Executable exe = compile(g, options);
    for (int run = 0; run < 3; ++run)  // eager, captured, replayed
      testing::expect_close(exe.run({{"x", view}}).at(0).to_host(), want,
                            testing::Tolerance{1e-6, 1e-6}, "strided CUDA feed on " + device.str());
  }
}

TEST(CudaStreams, StridedCudaValueForVariableAndConstant) {
  LOOM_REQUIRE_REAL_CUDA();
  TensorData host = random_tensor(DType::f32, {4, 30});
  TensorData view = host.to(Device::cuda()).view({4, 30}, {-30, 1}, 90);
  std::vector<uint8_t> want = view_bytes(host, {4, 30}, {-30, 1}, 90);
  for (Device store_device : {Device::cuda(), Device::cpu()}) {
    VariableStore store(store_device);
    store.declare("v", TensorData::zeros(DType::f32, {4, 30}));
    store.set("v", view);
    EXPECT_EQ(host_bytes(store.get("v")), want) << "VariableStore on " << store_device.str();
  }
  Graph g;
  Tensor c = g.constant(view);
  Tensor v = g.variable("w", view);
  Tensor zero = g.placeholder("zero", {4, 30});
  CompileOptions options;
  options.device = Device::cuda();
  options.outputs = {c + zero, g.read(v) + zero};
  Executable exe = compile(g, options);
  auto out = exe.run({{"zero", TensorData::zeros(DType::f32, {4, 30})}});
  EXPECT_EQ(host_bytes(out.at(0)), want) << "Graph::constant";
  EXPECT_EQ(host_bytes(out.at(1)), want) << "Graph::variable";
}

// ---- 2. non-blocking streams and handoffs ---------------------------------------------

// Before: executable streams were blocking, so a legacy-stream call on another thread during
// a capture failed (cudaErrorStreamCaptureImplicit) and invalidated the capture.
TEST(CudaStreams, CaptureSurvivesLegacyStreamUseOnAnotherThread) {
  LOOM_REQUIRE_REAL_CUDA();
  Graph g;
  Tensor x = g.placeholder("x", {1 << 16});
  Tensor y = x;
  for (int i = 0; i < 60; ++i) y = tanh(y) * 0.5 + 0.25;
  CompileOptions options;
  options.device = Device::cuda();
  options.outputs = {y};
  CompileOptions on_cpu = options;
  on_cpu.device = Device::cpu();
  TensorData feed = random_tensor(DType::f32, {1 << 16});
  std::vector<double> want = testing::to_doubles(compile(g, on_cpu).run({{"x", feed}}).at(0));

  void* scratch = nullptr;
  ASSERT_EQ(cudaMalloc(&scratch, 1 << 22), cudaSuccess);
  std::atomic<bool> stop{false};
  std::atomic<int> failures{0};
  std::atomic<int64_t> calls{0};
  std::thread legacy_user([&] {
    cudaSetDevice(0);
    for (int64_t i = 0; !stop.load(); ++i) {
      cudaError_t status = cudaMemsetAsync(scratch, int(i & 0xff), 1 << 22, cudaStreamLegacy);
      if (status == cudaSuccess && i % 32 == 0) status = cudaStreamSynchronize(cudaStreamLegacy);
      if (status != cudaSuccess) {
        ++failures;
        (void)cudaGetLastError();
      }
      ++calls;
    }
  });
  for (int round = 0; round < 20; ++round) {
    Executable exe = compile(g, options);  // a fresh plan: its second run captures
    for (int run = 0; run < 3; ++run) {
      TensorData out = exe.run({{"x", feed}}).at(0);
      testing::expect_close(out.to_host(), want, testing::Tolerance{1e-5, 1e-5},
                            "round " + std::to_string(round));
      if (run > 0) {
        EXPECT_TRUE(exe.last_run_stats().replayed_graph) << "round " << round;
      }
    }
  }
  stop = true;
  legacy_user.join();
  cudaFree(scratch);
  EXPECT_GT(calls.load(), 0);
  EXPECT_EQ(failures.load(), 0) << "legacy-stream calls failed during Loom's captures";
}

// Memory written by queued work on another library's stream, handed over with
// accept_from_stream, is read by Loom (a feed copy, a to_host copy) only after that work.
struct SlowProducer {
  static constexpr size_t kBig = size_t(256) << 20;
  cudaStream_t stream = nullptr;
  void* a = nullptr;
  void* b = nullptr;
  SlowProducer() {
    EXPECT_EQ(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), cudaSuccess);
    EXPECT_EQ(cudaMalloc(&a, kBig), cudaSuccess);
    EXPECT_EQ(cudaMalloc(&b, kBig), cudaSuccess);
  }
  ~SlowProducer() {
    cudaStreamSynchronize(stream);
    cudaFree(a);
    cudaFree(b);
    cudaStreamDestroy(stream);
  }
  // Milliseconds of copies, then `pattern` into every byte of `data`.
  void write_late(void* data, size_t bytes, int pattern) {
    for (int i = 0; i < 8; ++i)
      EXPECT_EQ(
          cudaMemcpyAsync(i % 2 ? a : b, i % 2 ? b : a, kBig, cudaMemcpyDeviceToDevice, stream),
          cudaSuccess);
    EXPECT_EQ(cudaMemsetAsync(data, pattern, bytes, stream), cudaSuccess);
  }
};

float pattern_float(int byte) {
  uint32_t bits = 0x01010101u * uint32_t(byte);
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

TEST(CudaStreams, HandedOverMemoryIsReadAfterTheProducersWork) {
  LOOM_REQUIRE_REAL_CUDA();
  const int64_t n = 1 << 20;
  Backend& backend = backend_for(Device::cuda());
  SlowProducer producer;
  void* memory = nullptr;
  ASSERT_EQ(cudaMalloc(&memory, size_t(n) * 4), cudaSuccess);
  ASSERT_EQ(cudaMemset(memory, 0, size_t(n) * 4), cudaSuccess);
  TensorData feed = TensorData::wrap(memory, DType::f32, {n}, {1}, Device::cuda(), nullptr);
  Graph g;
  Tensor x = g.placeholder("x", {n});
  CompileOptions options;
  options.device = Device::cuda();
  options.outputs = {x * 2.0};
  Executable exe = compile(g, options);
  for (int pattern : {0x3f, 0x40, 0x41, 0x3e, 0x42}) {
    float value = pattern_float(pattern);
    producer.write_late(memory, size_t(n) * 4, pattern);
    backend.accept_from_stream(reinterpret_cast<intptr_t>(producer.stream));
    std::vector<float> out = exe.run({{"x", feed}}).at(0).to_vector<float>();
    ASSERT_EQ(out.front(), 2 * value) << "feed copied before the producer wrote it";
    ASSERT_EQ(out.back(), 2 * value);
    EXPECT_EQ(std::count(out.begin(), out.end(), 2 * value), n);

    producer.write_late(memory, size_t(n) * 4, pattern + 1);
    backend.accept_from_stream(reinterpret_cast<intptr_t>(producer.stream));
    std::vector<float> read = feed.to_vector<float>();  // a copy on the thread's stream
    EXPECT_EQ(std::count(read.begin(), read.end(), pattern_float(pattern + 1)), n);
  }
  cudaStreamSynchronize(producer.stream);
  cudaFree(memory);
}

TEST(CudaStreams, ConsumerStreamWaitsForHandedOverMemory) {
  LOOM_REQUIRE_REAL_CUDA();
  const size_t bytes = size_t(4) << 20;
  Backend& backend = backend_for(Device::cuda());
  SlowProducer producer;
  cudaStream_t consumer = nullptr;
  ASSERT_EQ(cudaStreamCreateWithFlags(&consumer, cudaStreamNonBlocking), cudaSuccess);
  void* memory = nullptr;
  uint8_t* pinned = nullptr;
  ASSERT_EQ(cudaMalloc(&memory, bytes), cudaSuccess);
  ASSERT_EQ(cudaMallocHost(reinterpret_cast<void**>(&pinned), bytes), cudaSuccess);
  for (int pattern : {0x11, 0x22, 0x33}) {
    producer.write_late(memory, bytes, pattern);
    backend.accept_from_stream(reinterpret_cast<intptr_t>(producer.stream));
    backend.release_to_stream(reinterpret_cast<intptr_t>(consumer));
    ASSERT_EQ(cudaMemcpyAsync(pinned, memory, bytes, cudaMemcpyDeviceToHost, consumer),
              cudaSuccess);
    ASSERT_EQ(cudaStreamSynchronize(consumer), cudaSuccess);
    EXPECT_EQ(std::count(pinned, pinned + bytes, uint8_t(pattern)), int64_t(bytes));
  }
  cudaStreamSynchronize(producer.stream);
  cudaFreeHost(pinned);
  cudaFree(memory);
  cudaStreamDestroy(consumer);
}

// An output handed out on the legacy default stream and dropped there while a read of it is
// still queued must not be overwritten by the next run that reuses the buffer. Needs
// Executable::run to call Backend::wait_for_handoffs(stream) first (executable.cpp).
TEST(CudaStreams, RunWaitsForLegacyStreamReadsOfAReusedOutput) {
  LOOM_REQUIRE_REAL_CUDA();
  const int64_t n = 1 << 20;
  const size_t bytes = size_t(n) * 4;
  Graph g;
  Tensor x = g.placeholder("x", {n});
  CompileOptions options;
  options.device = Device::cuda();
  options.outputs = {x * 2.0};
  Executable exe = compile(g, options);
  Backend& backend = backend_for(Device::cuda());
  void* a = nullptr;
  void* b = nullptr;
  float* pinned = nullptr;
  ASSERT_EQ(cudaMalloc(&a, SlowProducer::kBig), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&b, SlowProducer::kBig), cudaSuccess);
  ASSERT_EQ(cudaMallocHost(reinterpret_cast<void**>(&pinned), bytes), cudaSuccess);
  std::vector<TensorData> outputs;
  for (int round = 0; round < 4; ++round) {
    float old_value = float(round), new_value = float(round) + 0.5f;
    exe.run({{"x", TensorData::from_vector(std::vector<float>(size_t(n), old_value / 2), {n})}},
            outputs);
    void* out = outputs.at(0).data();
    backend.release_to_stream(1);  // handed to a reader on the legacy stream...
    for (int i = 0; i < 8; ++i)
      ASSERT_EQ(cudaMemcpyAsync(i % 2 ? a : b, i % 2 ? b : a, SlowProducer::kBig,
                                cudaMemcpyDeviceToDevice, cudaStreamLegacy),
                cudaSuccess);
    ASSERT_EQ(cudaMemcpyAsync(pinned, out, bytes, cudaMemcpyDeviceToHost, cudaStreamLegacy),
              cudaSuccess);  // ...whose read is queued behind milliseconds of work
    exe.run({{"x", TensorData::from_vector(std::vector<float>(size_t(n), new_value / 2), {n})}},
            outputs);
    ASSERT_EQ(outputs.at(0).data(), out) << "the output buffer was not reused";
    ASSERT_EQ(cudaStreamSynchronize(cudaStreamLegacy), cudaSuccess);
    EXPECT_EQ(std::count(pinned, pinned + n, old_value), n) << "round " << round;
    EXPECT_EQ(outputs.at(0).to_vector<float>().back(), new_value);
  }
  cudaFreeHost(pinned);
  cudaFree(a);
  cudaFree(b);
}

// ---- 3. captures that fail -------------------------------------------------------------

bool capturing(void* stream) {
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusActive;
  EXPECT_EQ(cudaStreamIsCapturing(static_cast<cudaStream_t>(stream), &status), cudaSuccess);
  return status != cudaStreamCaptureStatusNone;
}

TEST(CudaStreams, FailedCaptureReturnsNullAndLeavesTheStreamClean) {
  LOOM_REQUIRE_REAL_CUDA();
  Backend& b = backend_for(Device::cuda());
  void* stream = b.create_stream();
  TensorData host = random_tensor(DType::f32, {4096});
  TensorData src = host.to(Device::cuda());
  TensorData dst = TensorData::zeros(DType::f32, {4096}, Device::cuda());

  EXPECT_FALSE(b.begin_capture(nullptr)) << "the legacy stream is never captured";
  // A call that is illegal while capturing invalidates the capture.
  ASSERT_TRUE(b.begin_capture(stream));
  EXPECT_THROW(b.synchronize(stream), Error);
  std::shared_ptr<void> graph;
  EXPECT_NO_THROW(graph = b.end_capture(stream));
  EXPECT_FALSE(graph);
  EXPECT_FALSE(capturing(stream));
  EXPECT_EQ(cudaPeekAtLastError(), cudaSuccess);
  // Ending a capture that never began is a failure too, not an exception.
  EXPECT_NO_THROW(graph = b.end_capture(stream));
  EXPECT_FALSE(graph);
  EXPECT_EQ(cudaPeekAtLastError(), cudaSuccess);

  // A capture left open is ended by the next begin_capture, which then captures.
  ASSERT_TRUE(b.begin_capture(stream));
  ASSERT_TRUE(b.begin_capture(stream));
  b.copy(dst.data(), Device::cuda(), src.data(), Device::cuda(), src.nbytes(), stream);
  graph = b.end_capture(stream);
  ASSERT_TRUE(graph);
  EXPECT_FALSE(capturing(stream));
  b.replay(graph, stream);
  b.synchronize(stream);
  EXPECT_EQ(host_bytes(dst), host_bytes(host));
  // And memory is allocated again once no capture is open on this thread.
  EXPECT_NO_THROW(TensorData::empty(DType::f32, {16}, Device::cuda()));
  graph.reset();
  b.destroy_stream(stream);
}

// ---- 4. the caller's current device ---------------------------------------------------

void use_everything_on(Device device) {
  Backend& b = backend_for(device);
  TensorData host = random_tensor(DType::f32, {4, 30});
  {
    TensorData dev = host.to(device);
    TensorData view = dev.view({30, 4}, {1, 30}, 0);
    EXPECT_EQ(host_bytes(view.contiguous()), host_bytes(host.view({30, 4}, {1, 30}, 0)));
    EXPECT_EQ(host_bytes(dev.clone()), host_bytes(host));
  }  // released here
  void* stream = b.create_stream();
  b.synchronize(stream);
  ASSERT_TRUE(b.begin_capture(stream));
  EXPECT_NO_THROW((void)b.end_capture(stream));  // an empty graph, or none: either is fine
  b.accept_from_stream(2);
  b.release_to_stream(2);
  b.destroy_stream(stream);
}

TEST(CudaStreams, CurrentDeviceIsUnchangedOnOneGpu) {
  LOOM_REQUIRE_REAL_CUDA();
  cuda::set_current_device(0);
  use_everything_on(Device::cuda(0));
  EXPECT_EQ(cuda::current_device(), 0);
}

TEST(CudaStreams, SecondGpuLeavesTheCallersDeviceAlone) {
  LOOM_REQUIRE_REAL_CUDA();
  if (gpu_count() < 2) GTEST_SKIP() << "needs two GPUs";
  cuda::set_current_device(0);
  use_everything_on(Device::cuda(1));
  EXPECT_EQ(cuda::current_device(), 0) << "after backend calls on cuda:1";
  TensorData on_one = random_tensor(DType::f32, {64}).to(Device::cuda(1));
  EXPECT_EQ(cuda::current_device(), 0);
  TensorData on_zero = on_one.to(Device::cuda(0));  // a peer copy
  EXPECT_EQ(host_bytes(on_zero), host_bytes(on_one));
  on_one = TensorData();  // freed on cuda:1
  EXPECT_EQ(cuda::current_device(), 0) << "after freeing memory on cuda:1";
  // The other way round: a thread on cuda:1 stays there.
  cuda::set_current_device(1);
  use_everything_on(Device::cuda(0));
  EXPECT_EQ(cuda::current_device(), 1);
  cuda::set_current_device(0);
}

// Needs Executable::run to hold a DeviceScope instead of calling activate() (executable.cpp).
TEST(CudaStreams, RunOnSecondGpuLeavesTheCallersDeviceAlone) {
  LOOM_REQUIRE_REAL_CUDA();
  if (gpu_count() < 2) GTEST_SKIP() << "needs two GPUs";
  cuda::set_current_device(0);
  {
    Graph g;
    Tensor x = g.placeholder("x", {8, 16});
    CompileOptions options;
    options.device = Device::cuda(1);
    options.outputs = {softmax(matmul(x, g.constant(random_tensor(DType::f32, {16, 4}))))};
    Executable exe = compile(g, options);
    EXPECT_EQ(cuda::current_device(), 0) << "after compile";
    for (int run = 0; run < 3; ++run) {
      exe.run({{"x", random_tensor(DType::f32, {8, 16})}});
      EXPECT_EQ(cuda::current_device(), 0) << "after run " << run;
    }
  }
  EXPECT_EQ(cuda::current_device(), 0) << "after the executable is destroyed";
}

}  // namespace
}  // namespace loom
