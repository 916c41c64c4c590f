#include <atomic>
#include <cstdlib>
#include <new>

#include "test_util.h"

// GCC cannot see that this operator new is malloc-backed.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

// Counts every heap allocation of the process, to prove that a steady-state run makes none.
static std::atomic<size_t> g_heap_allocations{0};
void* operator new(size_t size) {
  ++g_heap_allocations;
  if (void* p = std::malloc(size ? size : 1)) return p;
  throw std::bad_alloc();
}
void* operator new(size_t size, const std::nothrow_t&) noexcept {
  ++g_heap_allocations;
  return std::malloc(size ? size : 1);
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
// The nothrow form (std::stable_sort's buffer) must come from the same malloc as the plain
// delete that frees it: under AddressSanitizer the runtime's own nothrow new did not.
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }

namespace loom {

static ErrorKind run_error(Executable& exe, const Feeds& feeds, std::string* msg = nullptr) {
  try {
    exe.run(feeds);
  } catch (const Error& e) {
    if (msg) *msg = e.what();
    return e.kind();
  }
  ADD_FAILURE() << "expected loom::Error";
  return ErrorKind::internal;
}

static Executable compile_one(const Graph& g, Tensor out) {
  CompileOptions options;
  options.outputs = {out};
  return compile(g, options);
}

TEST(Runtime, FeedErrors) {
  Graph g;
  Tensor x = g.placeholder("x", {"n", 3});
  Tensor y = g.placeholder("y", {"n", 3});
  Executable exe = compile_one(g, x + y);
  auto a = TensorData::zeros(DType::f32, {2, 3});
  std::string msg;
  EXPECT_EQ(run_error(exe, {{"x", a}}, &msg), ErrorKind::value);  // missing feed
  EXPECT_NE(msg.find("'y'"), std::string::npos) << msg;
  EXPECT_EQ(run_error(exe, {{"x", a}, {"y", a}, {"z", a}}), ErrorKind::value);  // unknown feed
  EXPECT_EQ(run_error(exe, {{"x", a}, {"y", TensorData::zeros(DType::f16, {2, 3})}}),
            ErrorKind::dtype);
  EXPECT_EQ(run_error(exe, {{"x", a}, {"y", TensorData::zeros(DType::f32, {2, 4})}}),
            ErrorKind::shape);
  EXPECT_EQ(run_error(exe, {{"x", a}, {"y", TensorData::zeros(DType::f32, {3, 3})}}, &msg),
            ErrorKind::shape);  // "n" bound to 2 and 3
  EXPECT_NE(msg.find("'n'"), std::string::npos) << msg;
  EXPECT_EQ(run_error(exe, {{"x", a}, {"y", TensorData::zeros(DType::f32, {6})}}),
            ErrorKind::shape);  // rank
  EXPECT_EQ(run_error(exe, {{"x", a}, {"y", TensorData()}}), ErrorKind::value);
  Executable empty;
  EXPECT_THROW(empty.run({}), Error);
}

TEST(Runtime, UnboundSymbolIsAnError) {
  Graph g;
  Tensor x = g.placeholder("x", {"n", 4});
  Tensor y = reshape(x, {"m", 2});  // "m" is bound by no placeholder
  Executable exe = compile_one(g, y);
  std::string msg;
  EXPECT_EQ(run_error(exe, {{"x", TensorData::zeros(DType::f32, {3, 4})}}, &msg), ErrorKind::shape);
  EXPECT_NE(msg.find("m"), std::string::npos) << msg;
  EXPECT_NE(msg.find("reshape"), std::string::npos) << msg;
}

TEST(Runtime, OnePlanPerBindingOfSymbols) {
  Graph g;
  Tensor x = g.placeholder("x", {"n", 2});
  Executable exe = compile_one(g, x * 3.0);
  for (int64_t n : {1, 5, 1, 5, 7}) {
    auto feed = testing::random_tensor(DType::f32, {n, 2});
    auto out = exe.run({{"x", feed}})[0];
    EXPECT_EQ(out.shape(), (Extents{n, 2}));
    auto in = feed.to_vector<float>(), got = out.to_vector<float>();
    for (size_t i = 0; i < in.size(); ++i) EXPECT_FLOAT_EQ(got[i], in[i] * 3);
  }
  exe.run({{"x", TensorData::zeros(DType::f32, {5, 2})}});
  EXPECT_FALSE(exe.last_run_stats().planned);
  exe.run({{"x", TensorData::zeros(DType::f32, {9, 2})}});
  EXPECT_TRUE(exe.last_run_stats().planned);
}

TEST(Runtime, NonContiguousFeedIsReadThroughItsStrides) {
  Graph g;
  Tensor x = g.placeholder("x", {3, 2});
  Executable exe = compile_one(g, x + 0.0);
  auto base = TensorData::from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 3});
  auto transposed = base.view({3, 2}, {1, 3}, 0);
  auto out = exe.run({{"x", transposed}})[0].to_vector<float>();
  EXPECT_EQ(out, (std::vector<float>{1, 4, 2, 5, 3, 6}));
}

TEST(Runtime, SteadyStateRunAllocatesNothing) {
  Graph g;
  Tensor x = g.placeholder("x", {"n", 16});
  Tensor w = g.variable("w", testing::random_tensor(DType::f32, {16, 16}));
  Tensor y = softmax(relu(matmul(x, w) + 1.0), -1);
  Executable exe = compile_one(g, y);
  Feeds feeds = {{"x", testing::random_tensor(DType::f32, {8, 16})}};
  std::vector<TensorData> outputs;
  exe.run(feeds, outputs);  // plans and allocates
  exe.run(feeds, outputs);
  size_t before = allocation_count();
  size_t heap_before = g_heap_allocations.load();
  for (int i = 0; i < 20; ++i) exe.run(feeds, outputs);
  EXPECT_EQ(g_heap_allocations.load(), heap_before);
  EXPECT_EQ(allocation_count(), before);
  // run() that returns fresh outputs allocates exactly those.
  exe.run(feeds);
  EXPECT_EQ(allocation_count(), before + 1);
}

TEST(Runtime, ArenaReusesMemoryOfDeadIntermediates) {
  Graph g;
  Tensor x = g.placeholder("x", {256, 256});
  Tensor y = x;
  for (int i = 0; i < 8; ++i) y = tanh(y) + 1.0;  // a chain: each value dies at the next op
  // Unfused: fuse_elementwise would leave no intermediate to place.
  CompileOptions options;
  options.outputs = {y};
  options.disabled_passes = {"fuse_elementwise"};
  Executable exe = compile(g, options);
  exe.run({{"x", testing::random_tensor(DType::f32, {256, 256})}});
  EXPECT_GT(exe.unshared_intermediate_bytes(), 0u);
  EXPECT_LT(exe.arena_bytes(), exe.unshared_intermediate_bytes() / 4);
}

TEST(Runtime, SharedVariableStoreAcrossExecutables) {
  Graph g;
  Tensor v = g.variable("counter", TensorData::from_vector<float>({0}, {1}));
  Tensor inc = g.read(v) + 1.0;
  g.assign(v, inc);
  CompileOptions options;
  options.outputs = {inc};
  Executable a = compile(g, options);
  options.variables = a.variable_store();
  Executable b = compile(g, options);
  a.run({});
  b.run({});
  a.run({});
  EXPECT_EQ(a.variables().get("counter").to_vector<float>()[0], 3.f);
  EXPECT_THROW(a.variables().get("nope"), Error);
  EXPECT_THROW(a.variables().set("counter", TensorData::zeros(DType::f32, {2})), Error);
  a.variables().set("counter", TensorData::from_vector<float>({10}, {1}));
  EXPECT_EQ(b.run({})[0].to_vector<float>()[0], 11.f);
}

// The two-layer MLP from the core issue, against a naive reference.
TEST(Runtime, TwoLayerMlp) {
  const int64_t batch = 5, in = 7, hidden = 11, out = 3;
  auto w1 = testing::random_tensor(DType::f32, {in, hidden});
  auto b1 = testing::random_tensor(DType::f32, {hidden});
  auto w2 = testing::random_tensor(DType::f32, {hidden, out});
  auto xs = testing::random_tensor(DType::f32, {batch, in});
  Graph g;
  Tensor x = g.placeholder("x", {"batch", in});
  Tensor h = gelu(matmul(x, g.variable("w1", w1)) + g.variable("b1", b1));
  Tensor y = log_softmax(matmul(h, g.variable("w2", w2)), -1);
  auto got = testing::run_once(g, {y}, {{"x", xs}})[0];

  auto X = testing::to_doubles(xs), W1 = testing::to_doubles(w1), B1 = testing::to_doubles(b1),
       W2 = testing::to_doubles(w2);
  std::vector<double> want;
  for (int64_t r = 0; r < batch; ++r) {
    std::vector<double> hid(static_cast<size_t>(hidden)), logits(static_cast<size_t>(out));
    for (int64_t j = 0; j < hidden; ++j) {
      double s = B1[size_t(j)];
      for (int64_t k = 0; k < in; ++k) s += X[size_t(r * in + k)] * W1[size_t(k * hidden + j)];
      hid[size_t(j)] = 0.5 * s * (1 + std::erf(s / std::sqrt(2.0)));
    }
    double mx = -1e300;
    for (int64_t j = 0; j < out; ++j) {
      double s = 0;
      for (int64_t k = 0; k < hidden; ++k) s += hid[size_t(k)] * W2[size_t(k * out + j)];
      logits[size_t(j)] = s;
      mx = std::max(mx, s);
    }
    double z = 0;
    for (double l : logits) z += std::exp(l - mx);
    for (double l : logits) want.push_back(l - mx - std::log(z));
  }
  testing::expect_close(got, want, testing::tolerance_for(DType::f32));
}

}  // namespace loom

namespace loom {

TEST(Runtime, PlanCacheKeepsTheMostRecentBindings) {
  Graph g;
  Tensor x = g.placeholder("x", {"n"});
  CompileOptions options;
  options.outputs = {x * 2.0};
  Executable exe = compile(g, options);
  for (int64_t n = 1; n <= 40; ++n) {
    auto out = exe.run(
        {{"x", TensorData::from_floats(std::vector<float>(size_t(n), 1.f), DType::f32, {n})}});
    EXPECT_EQ(out[0].to_vector<float>(), std::vector<float>(size_t(n), 2.f));
    EXPECT_LE(exe.cached_plans(), 16u);
  }
  EXPECT_EQ(exe.cached_plans(), 16u);
  // The most recent binding is still planned; an evicted one is planned again.
  exe.run({{"x", TensorData::zeros(DType::f32, {40})}});
  EXPECT_FALSE(exe.last_run_stats().planned);
  exe.run({{"x", TensorData::zeros(DType::f32, {1})}});
  EXPECT_TRUE(exe.last_run_stats().planned);
}

}  // namespace loom

namespace loom {

// More host memory than the machine has is an error (ErrorKind::device), not an abort: found
// by the package fuzz test under ASan, whose allocator aborts on such sizes.
TEST(Runtime, AbsurdHostAllocationIsAnError) {
  EXPECT_THROW(TensorData::empty(DType::u8, {int64_t(1) << 54}), Error);
}

}  // namespace loom
