// Views: alias ops (transpose, slice with steps, broadcast_to, reshape, frames) lowered as
// strided views of their input. Each test runs a graph twice: with the kernels as they are
// (the consumer reads the view), and with the consumer's kernel stripped of its strided
// inputs, so the planner gathers the view first. The difference in kernel calls and arena
// bytes is the copy that views removed; both runs match a naive reference.
#include <unistd.h>

#include <cmath>
#include <complex>
#include <cstdio>
#include <vector>

#include "core/kernel_test_hooks.h"
#include "ir/node.h"
#include "loom/fft.h"
#include "loom/package.h"
#include "test_util.h"

namespace loom {
namespace {

using testing::random_tensor;
using testing::to_doubles;

size_t aligned(size_t bytes) { return (bytes + 255) / 256 * 256; }

// The op's CPU kernels without their strided inputs: what the planner had before views.
testing::KernelOverride contiguous_only(const std::string& op) {
  std::vector<std::shared_ptr<const Kernel>> plain;
  for (const auto& k : backend_for(Device::cpu()).kernels(op)) {
    auto copy = std::make_shared<Kernel>(*k);
    copy->strided_inputs = false;
    plain.push_back(std::move(copy));
  }
  return testing::KernelOverride(Device::cpu(), op, std::move(plain));
}

struct Measured {
  std::vector<TensorData> outputs;
  size_t kernels = 0;
  size_t arena = 0;
};

Measured measure(const Graph& g, std::vector<Tensor> outputs, const Feeds& feeds) {
  CompileOptions options;
  options.outputs = std::move(outputs);
  Executable exe = compile(g, options);
  Measured m;
  m.outputs = exe.run(feeds);
  m.kernels = exe.last_run_stats().kernels;
  m.arena = exe.arena_bytes();
  return m;
}

void expect_near_all(const TensorData& got, const std::vector<double>& want, double tol,
                     const std::string& what) {
  std::vector<double> g = to_doubles(got);
  ASSERT_EQ(g.size(), want.size()) << what;
  for (size_t i = 0; i < g.size(); ++i)
    ASSERT_NEAR(g[i], want[i], tol * (1 + std::abs(want[i]))) << what << " at " << i;
}

// C = A^T B with A stored [K, M]: the transpose is a view, and matmul takes it as its
// transpose flag. Without that, the planner gathers A^T ([M, K]) before the product.
TEST(Views, TransposeIntoMatmulIsAFlagNotACopy) {
  const int64_t k = 48, m = 40, n = 24;
  Graph g;
  Tensor a = g.placeholder("a", {k, m});
  Tensor b = g.placeholder("b", {k, n});
  Tensor c = matmul(transpose(a), b);
  TensorData av = random_tensor(DType::f32, {k, m}), bv = random_tensor(DType::f32, {k, n});
  std::vector<double> x = to_doubles(av), y = to_doubles(bv), want(size_t(m * n), 0.0);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j)
      for (int64_t p = 0; p < k; ++p)
        want[size_t(i * n + j)] += x[size_t(p * m + i)] * y[size_t(p * n + j)];

  Measured view = measure(g, {c}, {{"a", av}, {"b", bv}});
  Measured copy;
  {
    auto hook = contiguous_only("matmul");
    copy = measure(g, {c}, {{"a", av}, {"b", bv}});
  }
  expect_near_all(view.outputs[0], want, 1e-5, "A^T B read as a view");
  expect_near_all(copy.outputs[0], want, 1e-5, "A^T B through a gather");
  EXPECT_EQ(view.kernels, 1u);  // the product alone: no transpose kernel, no gather
  EXPECT_EQ(copy.kernels, 2u);  // the gather of A^T, then the product
  EXPECT_EQ(copy.arena - view.arena, aligned(size_t(m * k) * sizeof(float)));
}

// Batched: [B, M, K] · transpose([B, N, K]) over the last two axes (attention's Q K^T), with
// the transpose given both as the view and as the node's own flag on the other operand.
TEST(Views, BatchedTransposedOperandsKeepTheirMeaning) {
  const int64_t batch = 3, m = 5, k = 7, n = 6;
  Graph g;
  Tensor q = g.placeholder("q", {batch, m, k});
  Tensor kt = g.placeholder("k", {batch, n, k});
  Tensor s1 = matmul(q, transpose(kt));
  // transpose_b on a transposed view: the two transposes cancel.
  Tensor s2 = matmul(q, transpose(transpose(kt, {0, 2, 1})), false, true);
  TensorData qv = random_tensor(DType::f32, {batch, m, k});
  TensorData kv = random_tensor(DType::f32, {batch, n, k});
  std::vector<double> x = to_doubles(qv), y = to_doubles(kv), want(size_t(batch * m * n), 0.0);
  for (int64_t bi = 0; bi < batch; ++bi)
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j)
        for (int64_t p = 0; p < k; ++p)
          want[size_t((bi * m + i) * n + j)] +=
              x[size_t((bi * m + i) * k + p)] * y[size_t((bi * n + j) * k + p)];
  Measured got = measure(g, {s1, s2}, {{"q", qv}, {"k", kv}});
  expect_near_all(got.outputs[0], want, 1e-5, "Q K^T");
  expect_near_all(got.outputs[1], want, 1e-5, "Q (K^T)^T with transpose_b");
  EXPECT_EQ(got.kernels, 2u);
}

// A view that matmul reads neither as it is nor as a swapped matrix (k stored [B, S, H, D],
// permuted to heads first and then transposed, as imported attention graphs write Kᵀ): the
// planner gathers it, so compile must find the kernel for the gathered copy too.
TEST(Views, PermutedOperandIsGatheredNotRefused) {
  const int64_t batch = 2, heads = 3, m = 4, len = 5, d = 6;
  Graph g;
  Tensor q = g.placeholder("q", {batch, heads, m, d});
  Tensor k = g.placeholder("k", {batch, len, heads, d});
  Tensor s = matmul(q, transpose(permute(k, {0, 2, 1, 3}), {0, 1, 3, 2}));
  TensorData qv = random_tensor(DType::f32, {batch, heads, m, d});
  TensorData kv = random_tensor(DType::f32, {batch, len, heads, d});
  std::vector<double> x = to_doubles(qv), y = to_doubles(kv);
  std::vector<double> want(size_t(batch * heads * m * len), 0.0);
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < len; ++j)
          for (int64_t p = 0; p < d; ++p)
            want[size_t(((b * heads + h) * m + i) * len + j)] +=
                x[size_t(((b * heads + h) * m + i) * d + p)] *
                y[size_t(((b * len + j) * heads + h) * d + p)];
  Measured got = measure(g, {s}, {{"q", qv}, {"k", kv}});
  expect_near_all(got.outputs[0], want, 1e-5, "Q (K [B, S, H, D] permuted)^T");
  EXPECT_EQ(got.kernels, 2u);  // the gather, then the product
}

// STFT framing: frames without padding are a view (stride hop) that rfft reads in place.
TEST(Views, FramesIntoRfftReadTheSignal) {
  const int64_t rows = 2, t = 200, length = 32, hop = 12;
  const int64_t count = 1 + (t - length) / hop, bins = length / 2 + 1;
  Graph g;
  Tensor x = g.placeholder("x", {rows, t});
  Tensor spectrum = rfft(frames(x, length, hop));
  TensorData xv = random_tensor(DType::f32, {rows, t});
  std::vector<double> s = to_doubles(xv);

  Measured view = measure(g, {spectrum}, {{"x", xv}});
  Measured copy;
  {
    auto hook = contiguous_only("rfft");
    copy = measure(g, {spectrum}, {{"x", xv}});
  }
  for (const Measured* run : {&view, &copy}) {
    TensorData out = run->outputs[0].contiguous();
    ASSERT_EQ(out.shape(), (Extents{rows, count, bins}));
    const auto* z = static_cast<const std::complex<float>*>(out.data());
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t f = 0; f < count; ++f)
        for (int64_t q = 0; q < bins; ++q) {
          std::complex<double> want = 0;  // the DFT's definition, in double
          for (int64_t i = 0; i < length; ++i)
            want += s[size_t(r * t + f * hop + i)] *
                    std::polar(1.0, -2 * M_PI * double(q * i) / double(length));
          std::complex<float> got = z[(r * count + f) * bins + q];
          ASSERT_NEAR(got.real(), want.real(), 1e-4) << r << " " << f << " " << q;
          ASSERT_NEAR(got.imag(), want.imag(), 1e-4) << r << " " << f << " " << q;
        }
  }
  EXPECT_EQ(view.kernels, 1u);  // rfft alone: the frames are never written
  EXPECT_EQ(copy.kernels, 2u);
  EXPECT_EQ(copy.arena - view.arena, aligned(size_t(rows * count * length) * sizeof(float)));
}

// Kernels that read only contiguous inputs get one gather per view: a slice with steps, a
// broadcast and a transposed reshape, each checked against its definition.
TEST(Views, ContiguousOnlyKernelsReadAGatheredCopy) {
  Graph g;
  Tensor x = g.placeholder("x", {6, 10});
  Tensor strided = exp(slice(x, {0, 1}, {1, 0}, {6, 10}, {2, 3}));  // rows 1,3,5; cols 0,3,6,9
  Tensor repeated = exp(broadcast_to(slice(x, {0}, {2}, {3}), {4, 1, 10}));
  Tensor flat = reshape(transpose(x), {60});  // not expressible as strides: one copy
  TensorData xv = random_tensor(DType::f32, {6, 10});
  std::vector<double> v = to_doubles(xv), w1, w2, w3;
  for (int64_t i = 1; i < 6; i += 2)
    for (int64_t j = 0; j < 10; j += 3) w1.push_back(std::exp(v[size_t(i * 10 + j)]));
  for (int64_t r = 0; r < 4; ++r)
    for (int64_t j = 0; j < 10; ++j) w2.push_back(std::exp(v[size_t(2 * 10 + j)]));
  for (int64_t j = 0; j < 10; ++j)
    for (int64_t i = 0; i < 6; ++i) w3.push_back(v[size_t(i * 10 + j)]);
  Measured got = measure(g, {strided, repeated, flat}, {{"x", xv}});
  expect_near_all(got.outputs[0], w1, 1e-6, "exp of a stepped slice");
  expect_near_all(got.outputs[1], w2, 1e-6, "exp of a broadcast row");
  expect_near_all(got.outputs[2], w3, 0, "reshape of a transpose");
  EXPECT_EQ(got.outputs[2].shape(), (Extents{60}));
  // Two gathers and two exps, and the reshape's copy.
  EXPECT_EQ(got.kernels, 5u);
}

// A view read by several kernels that need it contiguous is gathered once, and the copy is
// kept until its last reader.
TEST(Views, OneCopyPerViewForAllItsReaders) {
  Graph g;
  Tensor x = g.placeholder("x", {5, 7});
  Tensor t = transpose(x);
  Tensor first = exp(t);
  Tensor between = exp(x);  // made while the copy of t must stay
  Tensor second = t * transpose(between);
  TensorData xv = random_tensor(DType::f32, {5, 7});
  std::vector<double> v = to_doubles(xv), w1, w2;
  for (int64_t i = 0; i < 7; ++i)
    for (int64_t j = 0; j < 5; ++j) {
      double e = v[size_t(j * 7 + i)];
      w1.push_back(std::exp(e));
      w2.push_back(e * std::exp(e));
    }
  Measured got = measure(g, {first, second}, {{"x", xv}});
  expect_near_all(got.outputs[0], w1, 1e-6, "exp(x^T)");
  expect_near_all(got.outputs[1], w2, 1e-6, "x^T exp(x)^T");
  // Three kernels and two gathers: x^T once for both readers, exp(x)^T once.
  EXPECT_EQ(got.kernels, 5u);

  // A package keeps the plan's arena layout, gather copies included, and loads.
  CompileOptions options;
  options.outputs = {first, second};
  Executable exe = compile(g, options);
  const std::string path =
      ::testing::TempDir() + "loom_views_" + std::to_string(::getpid()) + ".loom";
  save(exe, path);
  Executable loaded = load(path);
  auto again = loaded.run({{"x", xv}});
  std::remove(path.c_str());
  expect_near_all(again[1], w2, 1e-6, "x^T exp(x)^T from a package");
}

// Views as outputs are gathered when copied out; a view of a feed read in place starts at
// its offset in the caller's data.
TEST(Views, OutputsAndFeedsReadInPlace) {
  Graph g;
  Tensor x = g.placeholder("x", {8, 4});
  Tensor rows = slice(x, {0}, {3}, {7});           // contiguous, 48 bytes in
  Tensor cols = slice(x, {1}, {1}, {4}, {2});      // strided
  Tensor product = matmul(rows, transpose(rows));  // [4, 4]
  TensorData xv = random_tensor(DType::f32, {8, 4});
  std::vector<double> v = to_doubles(xv), want_rows, want_cols, want_product(16, 0.0);
  for (int64_t i = 3; i < 7; ++i)
    for (int64_t j = 0; j < 4; ++j) want_rows.push_back(v[size_t(i * 4 + j)]);
  for (int64_t i = 0; i < 8; ++i)
    for (int64_t j = 1; j < 4; j += 2) want_cols.push_back(v[size_t(i * 4 + j)]);
  for (int64_t i = 0; i < 4; ++i)
    for (int64_t j = 0; j < 4; ++j)
      for (int64_t p = 0; p < 4; ++p)
        want_product[size_t(i * 4 + j)] +=
            want_rows[size_t(i * 4 + p)] * want_rows[size_t(j * 4 + p)];
  CompileOptions options;
  options.outputs = {rows, cols, product};
  Executable exe = compile(g, options);
  auto out = exe.run({{"x", xv}});
  EXPECT_EQ(exe.last_run_stats().feed_bytes_copied, 0u);
  EXPECT_EQ(exe.last_run_stats().kernels, 1u);  // the product; rows^T is its transpose flag
  expect_near_all(out[0], want_rows, 0, "rows view");
  expect_near_all(out[1], want_cols, 0, "stepped columns view");
  expect_near_all(out[2], want_product, 1e-5, "rows rows^T");
  // Another feed at another address: every use of it follows, at its offset.
  TensorData other = random_tensor(DType::f32, {8, 4});
  out = exe.run({{"x", other}});
  std::vector<double> o = to_doubles(other), want_other;
  for (int64_t i = 3; i < 7; ++i)
    for (int64_t j = 0; j < 4; ++j) want_other.push_back(o[size_t(i * 4 + j)]);
  expect_near_all(out[0], want_other, 0, "rows view of the second feed");
}

// A view keeps its base alive: the base's bytes are not reused while a view of it is read.
TEST(Views, AViewKeepsItsBaseAlive) {
  const int64_t n = 32;
  Graph g;
  Tensor x = g.placeholder("x", {n, n});
  Tensor base = exp(x);
  Tensor t = transpose(base);
  // Values made after the last direct use of `base`, while its view is still to be read.
  Tensor other = x * 3.0;
  Tensor more = other + 1.0;
  Tensor out = matmul(t, more);
  TensorData xv = random_tensor(DType::f32, {n, n});
  std::vector<double> v = to_doubles(xv), want(size_t(n * n), 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j)
      for (int64_t p = 0; p < n; ++p)
        want[size_t(i * n + j)] += std::exp(v[size_t(p * n + i)]) * (v[size_t(p * n + j)] * 3 + 1);
  Measured got = measure(g, {out}, {{"x", xv}});
  expect_near_all(got.outputs[0], want, 1e-5, "exp(x)^T (3x + 1)");
}

// State: a view of a variable read by an assign to that variable is snapshotted first
// (assign(v, transpose(v)) would otherwise read what it has overwritten); a view of the
// buffer written in place sees the new values.
TEST(Views, ViewsOfStateKeepTheirValues) {
  const int64_t n = 16;
  TensorData init = random_tensor(DType::f32, {n, n});
  std::vector<double> v0 = to_doubles(init);
  Graph g;
  Tensor var = g.variable("m", init);
  Tensor old_t = transpose(g.read(var));
  g.assign(var, old_t);
  CompileOptions options;
  options.outputs = {old_t};
  Executable exe = compile(g, options);
  auto out = exe.run({});
  std::vector<double> want;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) want.push_back(v0[size_t(j * n + i)]);
  expect_near_all(out[0], want, 0, "transpose(read(m)) as an output");
  expect_near_all(exe.variables().get("m"), want, 0, "m after assign(m, transpose(m))");

  // A KV-cache-like update written in place; the output reads a view of the new buffer.
  Graph h;
  TensorData cache0 = TensorData::from_vector<float>(std::vector<float>(24, 0.f), {4, 6});
  Tensor cache = h.variable("cache", cache0);
  Tensor update = h.placeholder("u", {1, 6});
  Tensor updated = slice_update(h.read(cache), update, std::vector<int64_t>{2, 0});
  h.assign(cache, updated);
  Tensor column = slice(updated, {1}, {1}, {6}, {2});  // [4, 3] view of the updated cache
  CompileOptions ho;
  ho.outputs = {column};
  Executable hx = compile(h, ho);
  TensorData u = TensorData::from_vector<float>({1, 2, 3, 4, 5, 6}, {1, 6});
  auto col = hx.run({{"u", u}});
  std::vector<double> want_col(12, 0.0);
  want_col[6] = 2;
  want_col[7] = 4;
  want_col[8] = 6;
  expect_near_all(col[0], want_col, 0, "a view of the cache updated in place");
  EXPECT_EQ(hx.last_run_stats().bytes_written, 6 * sizeof(float));  // the window alone
}

}  // namespace
}  // namespace loom
