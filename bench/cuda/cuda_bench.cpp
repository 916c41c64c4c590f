// Device benchmarks of the CUDA backend, one JSON object per line (compare_torch.py reads
// them and times PyTorch on the same shapes):
//   copy       device-to-device copy bandwidth (the memory-bound ceiling)
//   add, mul, softmax, rms_norm   bandwidth of Loom's kernels (bytes read + written)
//   matmul     cuBLASLt through Loom's matmul kernel, f16 and bf16; for the decode rows
//              (M = 1, weight [N, K]) also the dense GEMV kernel (cuda.matmul.gemv) alone
//   chain      a 200-node elementwise chain run by an Executable, replayed as a CUDA graph
//              and launched eagerly (time per node), fused into one generated kernel (the
//              default) and with fuse_elementwise off (one kernel per node)
//   reduce_chain  a 100-step chain of row sums and broadcasts (f32 [64, 4096]) that
//              elementwise fusion cannot merge into one kernel, replayed as a CUDA graph:
//              microseconds per launched kernel (the compiled step's kernel count)
//   mlp        a four-layer bf16 MLP decode step (D 2048, F 5632, x [1, 2048], 277 MB of
//              weights), replayed as a CUDA graph: time per step and weight GB/s, and the
//              per-kernel breakdown of a profiled run on stderr
//   nvrtc      compile time of the chain's generated kernel: cold (NVRTC runs) and from the
//              disk cache (as a second process finds it)
//   fft        rfft2 of f32 [8, 4096, 4096], fft of c64 [4096, 16384] (cuFFT kernels with
//              their planned work area), STFT and log-mel spectrogram of 16 x 30 s at 16 kHz
//              (n_fft 400, hop 160): the graph's kernels in order, device time
// Kernels are timed directly (CUDA events around many launches, median of several
// repeats), with inputs rotated where one set would fit in L2.
#include <cuda_runtime.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "backends/cuda/kernel_cache.h"
#include "ir/op_registry.h"
#include "loom/loom.h"

namespace {

using namespace loom;

void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess) {
    std::fprintf(stderr, "CUDA error in %s: %s\n", what, cudaGetErrorString(status));
    std::exit(1);
  }
}

// Device data filled with small pseudo-random values in [-scale, scale] (no host RNG for
// hundreds of MB).
TensorData device_random(DType dtype, Extents shape, uint32_t seed, float scale = 1.f) {
  int64_t n = numel(shape);
  std::vector<float> values(size_t(std::min<int64_t>(n, int64_t(1) << 20)));
  uint32_t s = seed * 2654435761u + 1;
  for (auto& v : values) {
    s ^= s << 13;
    s ^= s >> 17;
    s ^= s << 5;
    v = (float(s % 2001) / 1000.f - 1.f) * scale;
  }
  TensorData block = TensorData::from_floats(values, dtype, {int64_t(values.size())});
  TensorData out = TensorData::empty(dtype, shape, Device::cuda());
  size_t block_bytes = block.nbytes(), total = out.nbytes();
  for (size_t off = 0; off < total; off += block_bytes)
    check(cudaMemcpy(static_cast<char*>(out.data()) + off, block.data(),
                     std::min(block_bytes, total - off), cudaMemcpyHostToDevice),
          "fill");
  return out;
}

TensorView view_of(const TensorData& t) {
  return {t.data(), t.dtype(), t.shape(), contiguous_strides(t.shape())};
}

// Median milliseconds of one call of `fn(i)`, from `repeats` event-timed loops of `iters`.
template <class Fn>
double time_ms(cudaStream_t stream, int iters, Fn&& fn, int repeats = 7) {
  for (int i = 0; i < 3; ++i) fn(i);
  check(cudaStreamSynchronize(stream), "warm-up");
  cudaEvent_t start, stop;
  check(cudaEventCreate(&start), "event");
  check(cudaEventCreate(&stop), "event");
  std::vector<double> ms;
  for (int r = 0; r < repeats; ++r) {
    check(cudaEventRecord(start, stream), "record");
    for (int i = 0; i < iters; ++i) fn(i);
    check(cudaEventRecord(stop, stream), "record");
    check(cudaEventSynchronize(stop), "sync");
    float t = 0;
    check(cudaEventElapsedTime(&t, start, stop), "elapsed");
    ms.push_back(double(t) / iters);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

void emit(const std::string& kind, const std::string& name, const std::string& dtype,
          const std::string& shape, double ms, double bytes, double flops) {
  std::printf(
      "{\"kind\": \"%s\", \"name\": \"%s\", \"dtype\": \"%s\", \"shape\": \"%s\", \"ms\": %.6f, "
      "\"bytes\": %.0f, \"flops\": %.0f, \"gbps\": %.1f, \"tflops\": %.2f}\n",
      kind.c_str(), name.c_str(), dtype.c_str(), shape.c_str(), ms, bytes, flops,
      bytes / (ms * 1e-3) / 1e9, flops / (ms * 1e-3) / 1e12);
  std::fflush(stdout);
}

// Times the CUDA kernel of the node behind `out` on device inputs (rotating input sets).
// `kernel_name`: that kernel of the op (else the first that supports the node), its first
// tactic.
void bench_node(const std::string& kind, const std::string& label, const Tensor& out,
                const std::vector<std::vector<TensorData>>& input_sets, double bytes, double flops,
                cudaStream_t stream, int iters, const std::string& kernel_name = "") {
  Backend& backend = backend_for(Device::cuda());
  const ir::Node& node = *out.node();
  std::vector<std::vector<TensorView>> ins;
  for (const auto& set : input_sets) {
    std::vector<TensorView> views;
    for (const auto& t : set) views.push_back(view_of(t));
    ins.push_back(std::move(views));
  }
  TensorData y = TensorData::empty(out.dtype(), static_extents(out.shape()), Device::cuda());
  std::vector<TensorView> outs = {view_of(y)};
  const Kernel* kernel = nullptr;
  std::shared_ptr<const Kernel> named;
  if (kernel_name.empty()) {
    kernel = backend.find_kernel(node, ins[0]);
  } else {
    for (const auto& k : backend.kernels(node.op_name()))
      if (k->name == kernel_name && (!k->supports || k->supports(node, ins[0]))) named = k;
    kernel = named.get();
  }
  if (!kernel) {
    std::fprintf(stderr, "no CUDA kernel %s for %s\n", kernel_name.c_str(), node.op_name().c_str());
    std::exit(1);
  }
  std::shared_ptr<void> state;
  KernelContext ctx{backend, stream, &state};
  ctx.invariant_inputs = ~uint64_t(0);  // no kernel here writes an input
  double ms = time_ms(stream, iters,
                      [&](int i) { kernel->run(ctx, node, ins[size_t(i) % ins.size()], outs); });
  emit(kind, label, dtype_name(out.dtype()), to_string(static_extents(out.shape())), ms, bytes,
       flops);
}

void bench_copy(cudaStream_t stream) {
  size_t bytes = size_t(1) << 30;
  void *a = nullptr, *b = nullptr;
  check(cudaMalloc(&a, bytes), "malloc");
  check(cudaMalloc(&b, bytes), "malloc");
  check(cudaMemset(a, 1, bytes), "memset");
  double ms = time_ms(stream, 20, [&](int) {
    check(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, stream), "copy");
  });
  emit("bandwidth", "copy", "u8", "[1073741824]", ms, 2.0 * double(bytes), 0);
  cudaFree(a);
  cudaFree(b);
}

void bench_bandwidth(cudaStream_t stream) {
  const int64_t n = int64_t(1) << 28;  // elements: 512 MiB per bf16 tensor
  for (DType dtype : {DType::bf16, DType::f32}) {
    double es = double(storage_bytes(dtype, 1));
    int64_t count = dtype == DType::f32 ? n / 2 : n;
    Graph g;
    Tensor a = g.placeholder("a", {count}, dtype);
    Tensor b = g.placeholder("b", {count}, dtype);
    std::vector<std::vector<TensorData>> sets = {
        {device_random(dtype, {count}, 1), device_random(dtype, {count}, 2)}};
    bench_node("bandwidth", "add", add(a, b), sets, 3 * es * double(count), 0, stream, 20);
    bench_node("bandwidth", "mul", mul(a, b), sets, 3 * es * double(count), 0, stream, 20);
  }
  for (DType dtype : {DType::bf16, DType::f32}) {
    double es = double(storage_bytes(dtype, 1));
    const int64_t rows = dtype == DType::f32 ? 16384 : 32768, d = 4096;
    Graph g;
    Tensor x = g.placeholder("x", {rows, d}, dtype);
    Tensor w = g.placeholder("w", {d}, dtype);
    TensorData xd = device_random(dtype, {rows, d}, 3), wd = device_random(dtype, {d}, 4);
    double bytes = 2 * es * double(rows * d);
    bench_node("bandwidth", "softmax", softmax(x, -1), {{xd}}, bytes, 0, stream, 20);
    bench_node("bandwidth", "rms_norm", rms_norm(x, w, 1e-6), {{xd, wd}}, bytes, 0, stream, 20);
  }
}

void bench_matmul(cudaStream_t stream) {
  struct Shape {
    int64_t m, n, k;
    bool transpose_b;
  };
  // The b^T rows with M = 1 run twice: cuBLASLt, then the dense GEMV kernel.
  const std::vector<Shape> shapes = {
      {4096, 4096, 4096, false},  {1, 4096, 4096, false},  {1, 4096, 4096, true},
      {4096, 11008, 4096, false}, {1, 11008, 4096, false}, {1, 11008, 4096, true},
      {1, 14336, 4096, true},     {1, 4096, 14336, true},  {8192, 8192, 8192, false}};
  for (DType dtype : {DType::f16, DType::bf16})
    for (const auto& s : shapes) {
      Graph g;
      Extents b_shape = s.transpose_b ? Extents{s.n, s.k} : Extents{s.k, s.n};
      Tensor a = g.placeholder("a", {s.m, s.k}, dtype);
      Tensor b = g.placeholder("b", to_shape(b_shape), dtype);
      Tensor y = matmul(a, b, false, s.transpose_b);
      // Enough weight copies that the set does not fit in L2 (50 MB on an H100).
      double weight_bytes = double(storage_bytes(dtype, s.n * s.k));
      int copies = int(std::clamp(200e6 / weight_bytes, 1.0, 8.0));
      std::vector<std::vector<TensorData>> sets;
      for (int c = 0; c < copies; ++c)
        sets.push_back({device_random(dtype, {s.m, s.k}, uint32_t(10 + c)),
                        device_random(dtype, b_shape, uint32_t(20 + c))});
      double es = double(storage_bytes(dtype, 1));
      double bytes = es * double(s.m * s.k + s.k * s.n + s.m * s.n);
      double flops = 2.0 * double(s.m) * double(s.n) * double(s.k);
      std::string label = "matmul " + std::to_string(s.m) + "x" + std::to_string(s.n) + "x" +
                          std::to_string(s.k) + (s.transpose_b ? " b^T" : "");
      int iters = flops > 1e11 ? 10 : 50;
      bench_node("matmul", label, y, sets, bytes, flops, stream, iters);
      if (s.m == 1 && s.transpose_b)
        bench_node("matmul", "gemv" + label.substr(label.find(' ')), y, sets, bytes, flops, stream,
                   iters, "cuda.matmul.gemv");
    }
}

// Device time of the kernels that compute `outputs` from `feeds`, run in graph order on one
// stream with their first tactic (its workspace allocated here, as the planner would place it
// in the arena): what a replayed Executable spends on the device, without the feed and
// output copies of a run.
double kernels_ms(const std::vector<Tensor>& outputs, const Feeds& feeds, cudaStream_t stream,
                  int iters) {
  Backend& backend = backend_for(Device::cuda());
  std::vector<const ir::Node*> order;
  std::function<void(const ir::Node*)> visit = [&](const ir::Node* n) {
    if (std::find(order.begin(), order.end(), n) != order.end()) return;
    for (const ir::Value& v : n->inputs) visit(v.node);
    order.push_back(n);
  };
  for (const Tensor& t : outputs) visit(t.node());
  std::map<const ir::Node*, TensorData> values;
  struct Call {
    const ir::Node* node;
    const Kernel* kernel;
    std::vector<TensorView> in, out;
    Tactic tactic;
    TensorData workspace;
    std::shared_ptr<void> state;
  };
  std::vector<Call> calls;
  for (const ir::Node* n : order) {
    if (n->is(ir::OpRole::placeholder)) {
      values[n] = feeds.at(n->name).to(Device::cuda());
      continue;
    }
    if (n->is(ir::OpRole::constant)) {
      values[n] = n->attrs.get<TensorData>("value").to(Device::cuda());
      continue;
    }
    Call c{n, nullptr, {}, {}, {}, {}, {}};
    for (const ir::Value& v : n->inputs) c.in.push_back(view_of(values.at(v.node)));
    values[n] = TensorData::empty(n->type().dtype, static_extents(n->type().shape), Device::cuda());
    c.out.push_back(view_of(values[n]));
    c.kernel = backend.find_kernel(*n, c.in);
    if (!c.kernel) {
      std::fprintf(stderr, "no CUDA kernel for %s\n", n->op_name().c_str());
      std::exit(1);
    }
    if (c.kernel->tactics) c.tactic = c.kernel->tactics(*n, c.in, c.out).at(0);
    c.workspace = TensorData::empty(
        DType::u8, {int64_t(std::max<size_t>(c.tactic.workspace_bytes, 1))}, Device::cuda());
    calls.push_back(std::move(c));
  }
  return time_ms(stream, iters, [&](int) {
    for (Call& c : calls) {
      KernelContext ctx{
          backend, stream, &c.state, &c.tactic, c.workspace.data(), c.tactic.workspace_bytes};
      c.kernel->run(ctx, *c.node, c.in, c.out);
    }
  });
}

void bench_fft(cudaStream_t stream) {
  {
    Graph g;
    Tensor x = g.placeholder("x", {8, 4096, 4096});
    Tensor y = rfft(x, {-2, -1});
    double bytes = 8.0 * 4096 * 4096 * 4 + 8.0 * 4096 * 2049 * 8;
    double ms = kernels_ms({y}, {{"x", device_random(DType::f32, {8, 4096, 4096}, 1)}}, stream, 10);
    emit("fft", "rfft2", "f32", "[8, 4096, 4096]", ms, bytes, 0);
  }
  {
    Graph g;
    Tensor x = g.placeholder("x", {4096, 16384}, DType::c64);
    Tensor y = fft(x);
    double bytes = 2.0 * 4096 * 16384 * 8;
    TensorData xc = TensorData::empty(DType::c64, {4096, 16384}, Device::cuda());
    TensorData parts = device_random(DType::f32, {4096, 2 * 16384}, 2);
    check(cudaMemcpy(xc.data(), parts.data(), xc.nbytes(), cudaMemcpyDeviceToDevice), "copy");
    double ms = kernels_ms({y}, {{"x", xc}}, stream, 10);
    emit("fft", "fft", "c64", "[4096, 16384]", ms, bytes, 0);
  }
  const int64_t batch = 16, samples = 30 * 16000;
  TensorData audio = device_random(DType::f32, {batch, samples}, 3);
  for (bool mel : {false, true}) {
    Graph g;
    Tensor x = g.placeholder("x", {batch, samples});
    StftOptions o;
    o.n_fft = 400;
    o.hop = 160;
    LogMelOptions m;
    m.stft = o;
    Tensor y = mel ? log_mel_spectrogram(x, m) : stft(x, o);
    double bytes = double(batch) * samples * 4 + double(y.dtype() == DType::c64 ? 8 : 4) *
                                                     double(numel(static_extents(y.shape())));
    double ms = kernels_ms({y}, {{"x", audio}}, stream, 20);
    emit("fft", mel ? "log_mel n_fft 400 hop 160 80 mels" : "stft n_fft 400 hop 160",
         dtype_name(y.dtype()), "[16, 480000]", ms, bytes, 0);
  }
}

// Decode attention, bf16, one query row per sequence over a cache of L keys, GQA Hq 32 / Hkv 8,
// D 128 (issue 15's shapes); bytes are the K/V read once. The cache's capacity is L and kv_len
// says all of it counts, as a decode step over a full cache.
void bench_attention_decode(cudaStream_t stream) {
  struct Shape {
    int64_t batch, kv_len;
  };
  const int64_t hq = 32, hkv = 8, d = 128;
  for (const Shape& s : {Shape{1, 4096}, Shape{1, 32768}, Shape{8, 8192}}) {
    const DType dt = DType::bf16;
    const Extents q_extents{s.batch, hq, 1, d}, kv_extents{s.batch, hkv, s.kv_len, d};
    Graph g;
    Tensor q = g.placeholder("q", to_shape(q_extents), dt);
    Tensor k = g.placeholder("k", to_shape(kv_extents), dt);
    Tensor v = g.placeholder("v", to_shape(kv_extents), dt);
    Tensor kv_len = g.placeholder("kv_len", {1}, DType::i64);
    AttentionOptions o;
    o.causal = true;
    o.kv_len = kv_len;
    Tensor y = scaled_dot_product_attention(q, k, v, o);
    TensorData len = TensorData::from_vector<int64_t>({s.kv_len}, {1}).to(Device::cuda());
    std::vector<std::vector<TensorData>> sets = {{device_random(dt, q_extents, 41),
                                                  device_random(dt, kv_extents, 42),
                                                  device_random(dt, kv_extents, 43), len}};
    const double bytes = 2.0 * double(storage_bytes(dt, numel(kv_extents)));
    const double flops = 4.0 * double(s.batch * hq) * double(s.kv_len) * double(d);
    const std::string label = "attention decode B" + std::to_string(s.batch) + " Hq32 Hkv8 L" +
                              std::to_string(s.kv_len) + " D128";
    bench_node("attention", label, y, sets, bytes, flops, stream, 20, "cuda.attention.decode");
  }
}

// Fused attention, bf16, on the prefill shapes (TFLOP/s counting causal work as half):
// the tensor-core kernel alone and, where it takes seconds no longer, the CUDA-core one.
void bench_attention(cudaStream_t stream) {
  struct Shape {
    int64_t batch, heads, seq, dim;
    bool causal;
  };
  const Shape shapes[] = {{1, 32, 4096, 128, true},
                          {1, 32, 8192, 128, true},
                          {4, 32, 4096, 128, false},
                          {1, 32, 8192, 64, true},
                          {1, 9, 512, 64, true}};  // SmolLM2's prefill of 512 (f16 path)
  for (const Shape& s : shapes) {
    const DType dt = DType::bf16;
    const Extents qkv{s.batch, s.heads, s.seq, s.dim};
    Graph g;
    Tensor q = g.placeholder("q", to_shape(qkv), dt);
    Tensor k = g.placeholder("k", to_shape(qkv), dt);
    Tensor v = g.placeholder("v", to_shape(qkv), dt);
    AttentionOptions o;
    o.causal = s.causal;
    Tensor y = scaled_dot_product_attention(q, k, v, o);
    std::vector<std::vector<TensorData>> sets = {
        {device_random(dt, qkv, 31), device_random(dt, qkv, 32), device_random(dt, qkv, 33)}};
    const double flops = 4.0 * double(s.batch * s.heads) * double(s.seq) * double(s.seq) *
                         double(s.dim) * (s.causal ? 0.5 : 1.0);
    const double bytes = 4.0 * double(storage_bytes(dt, numel(qkv)));
    const std::string label = "attention B" + std::to_string(s.batch) + " H" +
                              std::to_string(s.heads) + " S" + std::to_string(s.seq) + " D" +
                              std::to_string(s.dim) + (s.causal ? " causal" : " full");
    bench_node("attention", label + " mma", y, sets, bytes, flops, stream, 10,
               "cuda.attention.mma");
    if (flops < 2e10)
      bench_node("attention", label + " tiled", y, sets, bytes, flops, stream, 3,
                 "cuda.attention.tiled");
  }
  bench_attention_decode(stream);
}

// Wall time per run of an Executable (median of many runs).
double run_ms(Executable& exe, const Feeds& feeds, int runs) {
  std::vector<TensorData> outputs;
  for (int i = 0; i < 5; ++i) exe.run(feeds, outputs);
  std::vector<double> ms;
  for (int i = 0; i < runs; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    exe.run(feeds, outputs);
    auto t1 = std::chrono::steady_clock::now();
    ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

// The n-node elementwise chain (f16 [1, 4096]) and its feeds.
Graph chain_graph(int nodes, Tensor& y) {
  const int64_t width = 4096;
  Graph g;
  Tensor x = g.placeholder("x", {1, width}, DType::f16);
  Tensor c = g.placeholder("c", {width}, DType::f16);
  y = x;
  for (int i = 0; i < nodes; ++i) y = i % 2 ? mul(y, c) : add(y, c);
  return g;
}

Feeds chain_feeds() {
  const int64_t width = 4096;
  return {{"x", TensorData::from_floats(std::vector<float>(width, 0.5f), DType::f16, {1, width})},
          {"c", TensorData::from_floats(std::vector<float>(width, 1.0f), DType::f16, {width})}};
}

// Wall time of one run of an n-node elementwise chain, replayed or eager, fused or not.
double chain_run_ms(int nodes, bool graphs, bool fuse) {
  Tensor y;
  Graph g = chain_graph(nodes, y);
  Feeds feeds = chain_feeds();
  CompileOptions options;
  options.device = Device::cuda();
  options.outputs = {y};
  options.cuda_graphs = graphs;
  if (!fuse) options.disabled_passes = {"fuse_elementwise"};
  Executable exe = compile(g, options);
  double ms = run_ms(exe, feeds, 200);
  if (exe.last_run_stats().replayed_graph != graphs) {
    std::fprintf(stderr, "chain: expected replayed_graph = %d\n", int(graphs));
    std::exit(1);
  }
  return ms;
}

// A 200-node chain: the time of a whole run (feeds in, outputs out, synchronised) and the
// time per original node with the cost of a one-node run taken off; fused (one generated
// kernel) and unfused (a kernel per node).
void bench_chain() {
  const int nodes = 200;
  for (bool fuse : {true, false})
    for (bool graphs : {true, false}) {
      double one = chain_run_ms(1, graphs, fuse), all = chain_run_ms(nodes, graphs, fuse);
      std::printf(
          "{\"kind\": \"chain\", \"name\": \"chain %s%s\", \"dtype\": \"f16\", "
          "\"shape\": \"[1, 4096] x %d nodes\", \"ms\": %.6f, \"one_node_ms\": %.6f, "
          "\"us_per_node\": %.3f}\n",
          graphs ? "replayed" : "eager", fuse ? "" : " unfused", nodes, all, one,
          (all - one) * 1e3 / (nodes - 1));
      std::fflush(stdout);
    }
}

// The reduction chain: `steps` times { s = sum(y, -1, keepdims); y = y * c + s * eps } on f32
// [64, 4096] (c and eps keep the values near 1), or with steps = 0 the one-node run y = x * c.
// Each row sum is a reduction kernel and the elementwise ops between two sums fuse into one
// generated kernel, so the compiled step is about two kernels per step.
Graph reduce_chain_graph(int steps, Tensor& y) {
  Graph g;
  Tensor x = g.placeholder("x", {64, 4096});
  Tensor c = g.placeholder("c", {4096});
  y = steps == 0 ? mul(x, c) : x;
  for (int i = 0; i < steps; ++i) {
    Tensor s = sum(y, {-1}, true);
    y = add(mul(y, c), s * 2.5e-6);
  }
  return g;
}

// Whole-run wall time (replayed) and the compiled step's kernel launches.
std::pair<double, size_t> reduce_chain_run(int steps) {
  Tensor y;
  Graph g = reduce_chain_graph(steps, y);
  Feeds feeds{
      {"x", TensorData::from_floats(std::vector<float>(64 * 4096, 0.5f), DType::f32, {64, 4096})},
      {"c", TensorData::from_floats(std::vector<float>(4096, 0.99f), DType::f32, {4096})}};
  CompileOptions options;
  options.device = Device::cuda();
  options.outputs = {y};
  Executable exe = compile(g, options);
  double ms = run_ms(exe, feeds, 200);
  const RunStats& stats = exe.last_run_stats();
  if (!stats.replayed_graph) {
    std::fprintf(stderr, "reduce_chain: expected a replayed CUDA graph\n");
    std::exit(1);
  }
  return {ms, stats.kernels};
}

// Microseconds per kernel launched from a replayed CUDA graph where fusion cannot merge the
// chain: (whole run of the 100-step chain - one-node run) / the kernels it adds.
void bench_reduce_chain() {
  const int steps = 100;
  auto [one, one_kernels] = reduce_chain_run(0);
  auto [all, kernels] = reduce_chain_run(steps);
  const size_t added = kernels > one_kernels ? kernels - one_kernels : 1;
  std::printf(
      "{\"kind\": \"reduce_chain\", \"name\": \"reduce_chain replayed\", \"dtype\": \"f32\", "
      "\"shape\": \"[64, 4096] x %d steps\", \"steps\": %d, \"ms\": %.6f, \"one_node_ms\": %.6f, "
      "\"kernels\": %zu, \"one_node_kernels\": %zu, \"us_per_kernel\": %.3f}\n",
      steps, steps, all, one, kernels, one_kernels, (all - one) * 1e3 / double(added));
  std::fflush(stdout);
}

// A four-layer bf16 MLP decode step: x [1, D], each layer x = x + down(silu(gate(x)) * up(x))
// with weights (graph variables) gate and up [F, D] and down [D, F], all read as x W^T.
// Timed as whole replayed runs less a one-node run of the same feed (what the CUDA graph's
// kernels take on the device, about), and the weight bytes per step over that time. A
// profiled run (each step timed alone, eager) prints its kernels on stderr.
void bench_mlp() {
  const int64_t d = 2048, f = 5632;
  const int layers = 4;
  const DType dt = DType::bf16;
  Graph g;
  Tensor x = g.placeholder("x", {1, d}, dt);
  Tensor y = x;
  double weight_bytes = 0;
  for (int l = 0; l < layers; ++l) {
    const std::string p = "layer" + std::to_string(l) + ".";
    // Weights in [-0.02, 0.02] keep the activations in range over the layers.
    Tensor gate = g.variable(p + "gate", device_random(dt, {f, d}, uint32_t(100 + 3 * l), 0.02f));
    Tensor up = g.variable(p + "up", device_random(dt, {f, d}, uint32_t(101 + 3 * l), 0.02f));
    Tensor down = g.variable(p + "down", device_random(dt, {d, f}, uint32_t(102 + 3 * l), 0.02f));
    Tensor h = mul(silu(matmul(y, gate, false, true)), matmul(y, up, false, true));
    y = add(y, matmul(h, down, false, true));
    weight_bytes += 3.0 * double(storage_bytes(dt, f * d));
  }
  Feeds feeds{{"x", device_random(dt, {1, d}, 7).to(Device::cpu())}};
  CompileOptions options;
  options.device = Device::cuda();
  options.outputs = {y};
  Executable exe = compile(g, options);
  double all = run_ms(exe, feeds, 200);
  const RunStats stats = exe.last_run_stats();
  if (!stats.replayed_graph) {
    std::fprintf(stderr, "mlp: expected a replayed CUDA graph\n");
    std::exit(1);
  }
  Graph g1;
  Tensor x1 = g1.placeholder("x", {1, d}, dt);
  CompileOptions one_options;
  one_options.device = Device::cuda();
  one_options.outputs = {mul(x1, x1)};
  Executable one_exe = compile(g1, one_options);
  double one = run_ms(one_exe, feeds, 200);
  double ms = all - one;
  std::printf(
      "{\"kind\": \"mlp\", \"name\": \"mlp decode 4 layers\", \"dtype\": \"bf16\", "
      "\"shape\": \"x [1, %lld], D %lld F %lld\", \"ms\": %.6f, \"run_ms\": %.6f, "
      "\"one_node_ms\": %.6f, \"kernels\": %zu, \"bytes\": %.0f, \"gbps\": %.1f}\n",
      (long long)d, (long long)d, (long long)f, ms, all, one, stats.kernels, weight_bytes,
      weight_bytes / (ms * 1e-3) / 1e9);
  std::fflush(stdout);
  // Per-kernel breakdown (as `loom bench --profile`): time per op and kernel, slowest first.
  std::vector<NodeTime> times = exe.profile(feeds);
  std::map<std::string, std::pair<double, int>> by_kernel;
  double total = 0;
  for (const NodeTime& t : times) {
    auto& [t_ms, count] = by_kernel[t.op + " [" + t.kernel + "]"];
    t_ms += t.ms;
    ++count;
    total += t.ms;
  }
  std::vector<std::pair<double, std::string>> rows;
  for (const auto& [what, v] : by_kernel)
    rows.push_back({v.first, std::to_string(v.second) + " x " + what});
  std::sort(rows.rbegin(), rows.rend());
  std::fprintf(stderr, "mlp: profiled step (each kernel timed alone, eager): %.3f ms\n", total);
  for (const auto& [t_ms, what] : rows)
    std::fprintf(stderr, "  %8.3f ms  %s\n", t_ms, what.c_str());
}

// Compile time of a fused kernel: the first run of a new executable (which generates,
// compiles and loads the kernel) less a steady run, with the disk cache off (cold: NVRTC
// runs; each trial's chain has another constant, so another source) and with a warm disk
// cache (the process's loaded kernels forgotten first, as in a second process).
void bench_nvrtc() {
  const std::string dir = "/tmp/loom_bench_kernel_cache_" + std::to_string(::getpid());
  for (bool warm : {false, true}) {
    std::vector<double> ms;
    for (int trial = 0; trial < 5; ++trial) {
      const int64_t width = 4096;
      Graph g;
      Tensor y = g.placeholder("x", {1, width}, DType::f16);
      for (int i = 0; i < 200; ++i) y = i % 2 ? y * (1.0 + 1e-3 * (trial + 1)) : y + 0.5;
      CompileOptions options;
      options.device = Device::cuda();
      options.outputs = {y};
      options.kernel_cache = warm ? dir : "off";
      Feeds feeds{
          {"x", TensorData::from_floats(std::vector<float>(width, 0.5f), DType::f16, {1, width})}};
      if (warm) {
        compile(g, options).run(feeds);  // writes the entry
        cuda::clear_kernel_memory_cache();
      }
      Executable exe = compile(g, options);
      auto t0 = std::chrono::steady_clock::now();
      exe.run(feeds);
      auto t1 = std::chrono::steady_clock::now();
      exe.run(feeds);
      auto t2 = std::chrono::steady_clock::now();
      ms.push_back(std::chrono::duration<double, std::milli>((t1 - t0) - (t2 - t1)).count());
    }
    std::sort(ms.begin(), ms.end());
    std::printf(
        "{\"kind\": \"nvrtc\", \"name\": \"fused kernel compile %s\", \"dtype\": \"f16\", "
        "\"shape\": \"200-node chain\", \"ms\": %.3f}\n",
        warm ? "(disk cache)" : "(cold)", ms[ms.size() / 2]);
    std::fflush(stdout);
  }
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

}  // namespace

int main(int argc, char** argv) {
  if (!loom::cuda_available()) {
    std::fprintf(stderr, "no CUDA GPU: nothing to benchmark\n");
    return 0;
  }
  std::string only = argc > 1 ? argv[1] : "";
  try {
    cudaStream_t stream;
    check(cudaStreamCreate(&stream), "stream");
    if (only.empty() || only == "bandwidth") {
      bench_copy(stream);
      bench_bandwidth(stream);
    }
    if (only.empty() || only == "matmul") bench_matmul(stream);
    if (only.empty() || only == "chain") bench_chain();
    if (only.empty() || only == "reduce_chain") bench_reduce_chain();
    if (only.empty() || only == "mlp") bench_mlp();
    if (only.empty() || only == "nvrtc") bench_nvrtc();
    if (only.empty() || only == "fft") bench_fft(stream);
    if (only.empty() || only == "attention") bench_attention(stream);
    check(cudaStreamSynchronize(stream), "final sync");
  } catch (const loom::Error& e) {
    std::fprintf(stderr, "loom error: %s\n", e.what());
    return 1;
  }
  return 0;
}
