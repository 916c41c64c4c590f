// matmul against a double-precision reference: odd sizes, batch broadcasting, both
// transpose flags, f32/f16/bf16 and i32, symbolic dims, and the errors.
#include <string>
#include <vector>

#include "test_util.h"

namespace loom {
namespace {

using testing::broadcast_index;
using testing::random_tensor;
using testing::to_doubles;
using testing::unravel;

struct MatmulCase {
  Extents a, b;
  bool transpose_a = false, transpose_b = false;
};

// out[batch, i, j] = sum_k a[batch, i, k] * b[batch, k, j], reading through the transposes.
std::vector<double> matmul_reference(const TensorData& ta, const TensorData& tb,
                                     const MatmulCase& c, Extents* out_shape) {
  std::vector<double> a = to_doubles(ta), b = to_doubles(tb);
  const size_t ra = c.a.size(), rb = c.b.size();
  const int64_t m = c.transpose_a ? c.a[ra - 1] : c.a[ra - 2];
  const int64_t k = c.transpose_a ? c.a[ra - 2] : c.a[ra - 1];
  const int64_t n = c.transpose_b ? c.b[rb - 2] : c.b[rb - 1];
  Extents a_batch(c.a.begin(), c.a.end() - 2), b_batch(c.b.begin(), c.b.end() - 2);
  Extents batch(std::max(a_batch.size(), b_batch.size()), 1);
  for (size_t i = 0; i < batch.size(); ++i) {
    auto dim = [&](const Extents& e) {
      size_t off = batch.size() - e.size();
      return i < off ? int64_t(1) : e[i - off];
    };
    batch[i] = std::max(dim(a_batch), dim(b_batch));
  }
  *out_shape = batch;
  out_shape->push_back(m);
  out_shape->push_back(n);
  std::vector<double> out(size_t(numel(*out_shape)));
  for (int64_t bi = 0; bi < numel(batch); ++bi) {
    auto idx = unravel(bi, batch);
    const int64_t a0 = broadcast_index(idx, a_batch) * m * k;
    const int64_t b0 = broadcast_index(idx, b_batch) * k * n;
    // Rows of a and columns of b gathered densely, so that each dot product is contiguous.
    std::vector<double> rows(size_t(m * k)), cols(size_t(n * k));
    for (int64_t i = 0; i < m; ++i)
      for (int64_t kk = 0; kk < k; ++kk)
        rows[size_t(i * k + kk)] = a[size_t(a0 + (c.transpose_a ? kk * m + i : i * k + kk))];
    for (int64_t j = 0; j < n; ++j)
      for (int64_t kk = 0; kk < k; ++kk)
        cols[size_t(j * k + kk)] = b[size_t(b0 + (c.transpose_b ? j * k + kk : kk * n + j))];
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double s = 0;
        for (int64_t kk = 0; kk < k; ++kk) s += rows[size_t(i * k + kk)] * cols[size_t(j * k + kk)];
        out[size_t((bi * m + i) * n + j)] = s;
      }
  }
  return out;
}

std::string case_name(const MatmulCase& c) {
  return to_string(c.a) + (c.transpose_a ? "^T" : "") + " x " + to_string(c.b) +
         (c.transpose_b ? "^T" : "");
}

TensorData run_matmul(const MatmulCase& c, const TensorData& a, const TensorData& b) {
  Graph g;
  Tensor pa = g.placeholder("a", to_shape(c.a), a.dtype());
  Tensor pb = g.placeholder("b", to_shape(c.b), b.dtype());
  Tensor out = matmul(pa, pb, c.transpose_a, c.transpose_b);
  return testing::run_once(g, {out}, {{"a", a}, {"b", b}}).at(0);
}

class MatmulTest : public ::testing::TestWithParam<DType> {};

TEST_P(MatmulTest, MatchesReference) {
  const DType dtype = GetParam();
  const std::vector<MatmulCase> cases = {
      {{1, 64}, {64, 32}},              // decode: M = 1
      {{7, 13}, {13, 5}},               // odd sizes
      {{2, 1, 3, 4}, {5, 4, 6}},        // batch broadcast both ways
      {{13, 7}, {13, 5}, true, false},  // a transposed
      {{7, 13}, {5, 13}, false, true},  // b transposed
      {{2, 13, 7}, {3, 1, 5, 13}, true, true},
      {{2, 3, 16}, {16, 9}},  // b without batch: folded into one GEMM
      {{4, 1, 16}, {1, 9, 16}, false, true},
      {{3, 4}, {2, 4, 5}},  // a without batch
      {{1, 1}, {1, 1}},
      {{3, 1, 5}, {1, 5, 1}, true, true},  // transposed a with b batch of one: not folded
      {{67, 130}, {130, 71}},              // enough work for several threads
  };
  for (const auto& c : cases) {
    TensorData a = random_tensor(dtype, c.a), b = random_tensor(dtype, c.b);
    Extents shape;
    auto want = matmul_reference(a, b, c, &shape);
    TensorData got = run_matmul(c, a, b);
    EXPECT_EQ(got.dtype(), dtype);
    ASSERT_EQ(got.shape(), shape) << case_name(c);
    // Sums of k products (|a b| <= 1) in f32.
    const int64_t k = c.transpose_a ? c.a[c.a.size() - 2] : c.a.back();
    testing::expect_close(got, want, testing::accumulation_tolerance(dtype, k), case_name(c));
  }
}

// A wide K: the 16-bit path widens B in several panels; f32 checks the same shapes.
TEST_P(MatmulTest, WideInnerDimSpansPanels) {
  const DType dtype = GetParam();
  for (bool transpose_b : {false, true}) {
    MatmulCase c{
        {3, 8192}, transpose_b ? Extents{600, 8192} : Extents{8192, 600}, false, transpose_b};
    TensorData a = random_tensor(dtype, c.a), b = random_tensor(dtype, c.b);
    Extents shape;
    auto want = matmul_reference(a, b, c, &shape);
    TensorData got = run_matmul(c, a, b);
    ASSERT_EQ(got.shape(), shape);
    // Sums of 8192 products (|a b| <= 1) in f32.
    testing::expect_close(got, want, testing::accumulation_tolerance(dtype, 8192), case_name(c));
  }
}

TEST_P(MatmulTest, SymbolicRows) {
  const DType dtype = GetParam();
  Graph g;
  Tensor x = g.placeholder("x", {"seq", 16}, dtype);
  Tensor w = g.placeholder("w", {8, 16}, dtype);
  Tensor y = matmul(x, w, false, true);
  EXPECT_EQ(y.shape(), (Shape{"seq", 8}));
  for (int64_t seq : {1, 5}) {
    MatmulCase c{{seq, 16}, {8, 16}, false, true};
    TensorData xd = random_tensor(dtype, c.a), wd = random_tensor(dtype, c.b);
    Extents shape;
    auto want = matmul_reference(xd, wd, c, &shape);
    TensorData got = testing::run_once(g, {y}, {{"x", xd}, {"w", wd}}).at(0);
    ASSERT_EQ(got.shape(), shape);
    // Sums of 16 products (|a b| <= 1) in f32.
    testing::expect_close(got, want, testing::accumulation_tolerance(dtype, 16), case_name(c));
  }
}

INSTANTIATE_TEST_SUITE_P(Floats, MatmulTest, ::testing::Values(DType::f32, DType::f16, DType::bf16),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

TEST(MatmulInt, I32IsExact) {
  for (const MatmulCase& c :
       {MatmulCase{{7, 13}, {13, 5}}, MatmulCase{{2, 13, 7}, {3, 1, 5, 13}, true, true},
        MatmulCase{{2, 3, 4}, {4, 6}}}) {
    TensorData a = random_tensor(DType::i32, c.a, -50, 50);
    TensorData b = random_tensor(DType::i32, c.b, -50, 50);
    Extents shape;
    auto want = matmul_reference(a, b, c, &shape);
    TensorData got = run_matmul(c, a, b);
    ASSERT_EQ(got.dtype(), DType::i32);
    ASSERT_EQ(got.shape(), shape);
    auto g = got.to_vector<int32_t>();
    for (size_t i = 0; i < want.size(); ++i) ASSERT_EQ(double(g[i]), want[i]) << case_name(c);
  }
}

TEST(MatmulEmpty, ZeroInnerDimGivesZeros) {
  MatmulCase c{{3, 0}, {0, 4}};
  TensorData got =
      run_matmul(c, TensorData::zeros(DType::f32, c.a), TensorData::zeros(DType::f32, c.b));
  ASSERT_EQ(got.shape(), (Extents{3, 4}));
  for (float v : got.to_floats()) EXPECT_EQ(v, 0.f);
}

// Runs `fn`, expecting a loom::Error of `kind` whose message holds every one of `parts`.
template <class Fn>
void expect_error(Fn&& fn, ErrorKind kind, std::vector<std::string> parts) {
  try {
    fn();
    ADD_FAILURE() << "no error thrown";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), kind) << e.what();
    for (const auto& p : parts)
      EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what() << " lacks " << p;
  }
}

TEST(MatmulErrors, InnerDimMismatch) {
  Graph g;
  Tensor a = g.placeholder("a", {2, 3});
  Tensor b = g.placeholder("b", {4, 5});
  expect_error([&] { matmul(a, b); }, ErrorKind::shape, {"matmul", "[2, 3]", "[4, 5]"});
  // Transposing a makes K = 2, which still does not meet b's 4.
  expect_error([&] { matmul(a, b, true); }, ErrorKind::shape, {"matmul"});
  // Transposing b gives K = 5 against a's 3.
  expect_error([&] { matmul(a, b, false, true); }, ErrorKind::shape, {"matmul"});
}

TEST(MatmulErrors, TransposeMakesShapesFit) {
  Graph g;
  Tensor a = g.placeholder("a", {3, 2});
  Tensor b = g.placeholder("b", {5, 3});
  EXPECT_EQ(matmul(a, b, true, true).shape(), (Shape{2, 5}));
}

TEST(MatmulErrors, RankBelowTwo) {
  Graph g;
  Tensor a = g.placeholder("a", {3});
  Tensor b = g.placeholder("b", {3, 4});
  expect_error([&] { matmul(a, b); }, ErrorKind::shape, {"matmul"});
  expect_error([&] { matmul(b, a); }, ErrorKind::shape, {"matmul"});
}

TEST(MatmulErrors, BatchDimsDoNotBroadcast) {
  Graph g;
  Tensor a = g.placeholder("a", {2, 3, 4});
  Tensor b = g.placeholder("b", {3, 4, 5});
  expect_error([&] { matmul(a, b); }, ErrorKind::shape, {"matmul", "[2, 3, 4]", "[3, 4, 5]"});
}

TEST(MatmulErrors, DTypes) {
  Graph g;
  Tensor a = g.placeholder("a", {2, 3}, DType::f32);
  Tensor b = g.placeholder("b", {3, 4}, DType::f16);
  expect_error([&] { matmul(a, b); }, ErrorKind::dtype, {"matmul"});
  Tensor c = g.placeholder("c", {2, 3}, DType::i64);
  Tensor d = g.placeholder("d", {3, 4}, DType::i64);
  expect_error([&] { matmul(c, d); }, ErrorKind::dtype, {"matmul"});
}

// A symbolic K is accepted when the graph is built and checked once it is bound.
TEST(MatmulErrors, SymbolicInnerDimCheckedWhenBound) {
  Graph g;
  Tensor a = g.placeholder("a", {2, "k"});
  Tensor b = g.placeholder("b", {5, 3});
  Tensor y = matmul(a, b);
  EXPECT_EQ(y.shape(), (Shape{2, 3}));
  auto ok = testing::run_once(
      g, {y}, {{"a", random_tensor(DType::f32, {2, 5})}, {"b", random_tensor(DType::f32, {5, 3})}});
  EXPECT_EQ(ok.at(0).shape(), (Extents{2, 3}));
  expect_error(
      [&] {
        testing::run_once(
            g, {y},
            {{"a", random_tensor(DType::f32, {2, 4})}, {"b", random_tensor(DType::f32, {5, 3})}});
      },
      ErrorKind::shape, {"matmul"});
}

}  // namespace
}  // namespace loom
