// Callables: a call node runs a bound executable; rebinding swaps it without recompiling.
#include <atomic>
#include <thread>

#include "test_util.h"

namespace loom {
using namespace testing;
namespace {

constexpr int64_t kIn = 8, kRank = 3, kOut = 4;

// The adapter: x [n, in] -> (x A^T) B^T * scale, A [rank, in], B [out, rank] in variables.
struct Adapter {
  TensorData a = testing_util_random(DType::f32, {kRank, kIn});
  TensorData b = testing_util_random(DType::f32, {kOut, kRank});
  double scale = 0.5;
  static TensorData testing_util_random(DType dtype, Extents shape) {
    return random_tensor(dtype, std::move(shape));
  }
  Tensor apply(Graph& g, const Tensor& x) const {
    return matmul(matmul(x, g.constant(a), false, true), g.constant(b), false, true) * scale;
  }
  std::shared_ptr<Executable> compile_callable(Dim n = Dim("n")) const {
    Graph g;
    Tensor x = g.placeholder("x", {n, kIn});
    CompileOptions options;
    options.outputs = {apply(g, x)};
    return std::make_shared<Executable>(compile(g, options));
  }
};

// The model: relu(h W^T) + the adapter's output, h [n, in], W [out, in].
struct Model {
  TensorData w = random_tensor(DType::f32, {kOut, kIn});
  Tensor base(Graph& g, const Tensor& h) const {
    return relu(matmul(h, g.constant(w), false, true));
  }
  Executable compile_calling(CompileOptions options = {}) const {
    Graph g;
    Tensor h = g.placeholder("h", {Dim("n"), kIn});
    options.outputs = {base(g, h) + call("adapter", {h}, DType::f32, {Dim("n"), kOut})};
    return compile(g, options);
  }
  std::vector<double> inlined(const Adapter& adapter, const TensorData& h) const {
    Graph g;
    Tensor x = g.placeholder("h", {Dim("n"), kIn});
    return to_doubles(run_once(g, {base(g, x) + adapter.apply(g, x)}, {{"h", h}})[0]);
  }
};

TEST(Call, EqualsTheInlinedGraph) {
  Model model;
  Adapter adapter;
  CompileOptions options;
  options.callables["adapter"] = adapter.compile_callable();
  Executable exe = model.compile_calling(options);
  for (int64_t n : {1, 5, 3}) {
    TensorData h = random_tensor(DType::f32, {n, kIn});
    // Two matmuls of kIn and kRank terms then an add: the same kernels in both graphs, but
    // fusion may group the adds differently; allow the rounding of the sums.
    expect_close(exe.run({{"h", h}})[0], model.inlined(adapter, h),
                 accumulation_tolerance(DType::f32, kIn * kRank), "n=" + std::to_string(n));
  }
}

TEST(Call, RebindBetweenRunsAndUnbound) {
  Model model;
  Adapter first, second;
  Executable exe = model.compile_calling();
  TensorData h = random_tensor(DType::f32, {4, kIn});
  std::string message;
  EXPECT_EQ(error_kind([&] { exe.run({{"h", h}}); }, &message), ErrorKind::value);
  EXPECT_NE(message.find("no executable is bound to 'adapter'"), std::string::npos) << message;
  auto tol = accumulation_tolerance(DType::f32, kIn * kRank);
  exe.bind("adapter", first.compile_callable());
  expect_close(exe.run({{"h", h}})[0], model.inlined(first, h), tol, "first");
  exe.bind("adapter", second.compile_callable());
  expect_close(exe.run({{"h", h}})[0], model.inlined(second, h), tol, "second");
  exe.bind("adapter", first.compile_callable());
  expect_close(exe.run({{"h", h}})[0], model.inlined(first, h), tol, "first again");
  exe.bind("adapter", nullptr);
  EXPECT_EQ(error_kind([&] { exe.run({{"h", h}}); }), ErrorKind::value);
  EXPECT_EQ(exe.callables().size(), 1u);
}

// Runs on one thread while another rebinds: each run's output is the model with one adapter
// or the other, wholly.
TEST(Call, BindFromAnotherThreadWhileRunning) {
  Model model;
  Adapter first, second;
  second.scale = -3;  // far from the first's output
  auto callee_first = first.compile_callable(), callee_second = second.compile_callable();
  Executable exe = model.compile_calling();
  exe.bind("adapter", callee_first);
  TensorData h = random_tensor(DType::f32, {2, kIn});
  std::vector<double> want_first = model.inlined(first, h), want_second = model.inlined(second, h);
  Tolerance tol = accumulation_tolerance(DType::f32, kIn * kRank);
  auto matches = [&](const std::vector<float>& got, const std::vector<double>& want) {
    for (size_t i = 0; i < want.size(); ++i)
      if (std::abs(got[i] - want[i]) > tol.atol + tol.rtol * std::abs(want[i])) return false;
    return true;
  };
  std::atomic<bool> done{false};
  std::atomic<int> binds{0};
  std::thread binder([&] {
    for (int i = 0; !done; ++i) {
      exe.bind("adapter", i % 2 ? callee_first : callee_second);
      ++binds;
    }
  });
  int seen_first = 0, seen_second = 0, neither = 0;
  for (int i = 0; i < 400 || binds < 10; ++i) {
    std::vector<float> got = exe.run({{"h", h}})[0].to_floats();
    if (matches(got, want_first))
      ++seen_first;
    else if (matches(got, want_second))
      ++seen_second;
    else
      ++neither;
  }
  done = true;
  binder.join();
  EXPECT_EQ(neither, 0);
  EXPECT_GT(seen_first + seen_second, 0);
}

TEST(Call, SignatureMismatchIsAnErrorAtBind) {
  Model model;
  Executable exe = model.compile_calling();
  auto refused = [&](const std::string& symbol, std::shared_ptr<Executable> callee,
                     const std::string& words) {
    std::string message;
    ErrorKind kind = error_kind([&] { exe.bind(symbol, callee); }, &message);
    EXPECT_NE(message.find(words), std::string::npos) << message;
    return kind;
  };
  auto callee = [](std::function<Tensor(Graph&)> build) {
    Graph g;
    CompileOptions options;
    options.outputs = {build(g)};
    return std::make_shared<Executable>(compile(g, options));
  };
  // Output kOut + 1 wide.
  auto wide = callee([](Graph& g) {
    Tensor x = g.placeholder("x", {Dim("n"), kIn});
    return matmul(x, g.constant(random_tensor(DType::f32, {kOut + 1, kIn})), false, true);
  });
  EXPECT_EQ(refused("adapter", wide, "does not fit the call's"), ErrorKind::shape);
  auto f16 = callee([](Graph& g) {
    Tensor x = g.placeholder("x", {Dim("n"), kIn});
    return cast(matmul(x, g.constant(random_tensor(DType::f32, {kOut, kIn})), false, true),
                DType::f16);
  });
  EXPECT_EQ(refused("adapter", f16, "f16"), ErrorKind::shape);
  auto two_inputs = callee([](Graph& g) {
    Tensor x = g.placeholder("x", {Dim("n"), kIn});
    Tensor y = g.placeholder("y", {Dim("n"), kOut});
    return matmul(x, g.constant(random_tensor(DType::f32, {kOut, kIn})), false, true) + y;
  });
  EXPECT_EQ(refused("adapter", two_inputs, "does not fit"), ErrorKind::shape);
  auto stateful = std::make_shared<Executable>([] {
    Graph g;
    Tensor x = g.placeholder("x", {Dim("n"), kIn});
    Tensor v = g.variable("count", TensorData::zeros(DType::f32, {1}));
    g.assign(v, g.read(v) + 1.0);
    CompileOptions options;
    options.outputs = {matmul(x, g.constant(random_tensor(DType::f32, {kOut, kIn})), false, true)};
    return compile(g, options);
  }());
  EXPECT_EQ(refused("adapter", stateful, "may not assign"), ErrorKind::unsupported);
  Adapter adapter;
  EXPECT_EQ(refused("lora", adapter.compile_callable(), "no call of that name (calls: adapter)"),
            ErrorKind::value);
  // A static size where the call has a symbol binds, and is checked when a run binds it.
  exe.bind("adapter", adapter.compile_callable(Dim(7)));
  EXPECT_EQ(exe.run({{"h", random_tensor(DType::f32, {7, kIn})}})[0].shape(), (Extents{7, kOut}));
  EXPECT_EQ(error_kind([&] {
              exe.run({{"h", random_tensor(DType::f32, {4, kIn})}});
            }),
            ErrorKind::shape);
  exe.bind("adapter", adapter.compile_callable());
  // Through CompileOptions the same check applies.
  CompileOptions options;
  options.callables["adapter"] = wide;
  EXPECT_EQ(error_kind([&] { model.compile_calling(options); }), ErrorKind::shape);
}

}  // namespace
}  // namespace loom
