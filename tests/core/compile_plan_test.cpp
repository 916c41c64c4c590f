// Lowering at compile time: static graphs and CompileOptions::plan_for bindings are planned
// by compile(), so dump() shows their kernels before any run and the first run plans nothing;
// a node without a kernel on the device fails at compile, naming the op, dtypes and device.
#include <cmath>

#include "kernel_test_hooks.h"
#include "test_util.h"

namespace loom {

using testing::KernelOverride;

TEST(CompilePlan, StaticGraphIsPlannedAtCompile) {
  Graph g;
  Tensor x = g.placeholder("x", {4});
  CompileOptions options;
  options.outputs = {exp(x) + 1.0};
  Executable exe = compile(g, options);
  std::string dump = exe.dump();
  EXPECT_NE(dump.find("fused -> cpu.fused"), std::string::npos) << dump;  // exp and add, fused
  EXPECT_NE(dump.find("arena"), std::string::npos) << dump;
  EXPECT_EQ(exe.cached_plans(), 1u);
  EXPECT_GT(exe.arena_bytes(), 0u);
  auto out = exe.run({{"x", TensorData::from_vector<float>({0, 1, 2, 3}, {4})}});
  EXPECT_FALSE(exe.last_run_stats().planned);
  auto v = out[0].to_vector<float>();
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(v[size_t(i)], std::exp(float(i)) + 1, 1e-5);
}

TEST(CompilePlan, PlanForBindsSymbolsAtCompile) {
  Graph g;
  Tensor x = g.placeholder("x", {"n", 3});
  CompileOptions options;
  options.outputs = {sum(x, {1})};
  options.plan_for = {{{"n", 5}}, {{"n", 2}}};
  Executable exe = compile(g, options);
  EXPECT_EQ(exe.cached_plans(), 2u);
  std::string dump = exe.dump();
  EXPECT_NE(dump.find("plan for n=2"), std::string::npos) << dump;
  EXPECT_NE(dump.find("-> cpu."), std::string::npos) << dump;
  exe.run({{"x", testing::random_tensor(DType::f32, {5, 3})}});
  EXPECT_FALSE(exe.last_run_stats().planned);
  exe.run({{"x", testing::random_tensor(DType::f32, {7, 3})}});
  EXPECT_TRUE(exe.last_run_stats().planned);
}

TEST(CompilePlan, PlanForMustBindExactlyTheSymbols) {
  Graph g;
  Tensor x = g.placeholder("x", {"n"});
  CompileOptions options;
  options.outputs = {exp(x)};
  options.plan_for = {{{"m", 5}}};
  EXPECT_THROW(compile(g, options), Error);
  options.plan_for = {{{"n", 5}, {"m", 1}}};
  EXPECT_THROW(compile(g, options), Error);
  options.plan_for = {{{"n", -2}}};
  EXPECT_THROW(compile(g, options), Error);
}

TEST(CompilePlan, MissingKernelFailsAtCompileForSymbolicGraphsToo) {
  KernelOverride none(Device::cpu(), "exp", {});
  for (Shape shape : {Shape{"n", 2}, Shape{3, 2}}) {
    Graph g;
    Tensor x = g.placeholder("x", shape);
    CompileOptions options;
    options.outputs = {exp(x)};
    try {
      compile(g, options);
      FAIL() << "compiled a graph whose exp has no kernel";
    } catch (const Error& e) {
      std::string message = e.what();
      EXPECT_EQ(e.kind(), ErrorKind::unsupported);
      EXPECT_NE(message.find("'exp'"), std::string::npos) << message;
      EXPECT_NE(message.find("f32"), std::string::npos) << message;
      EXPECT_NE(message.find("cpu"), std::string::npos) << message;
    }
  }
}

// A kernel that supports only some extents: the run whose plan finds none fails before it
// writes anything, so the variable keeps the value of the last good run.
TEST(CompilePlan, RunWithoutKernelChangesNoVariable) {
  std::vector<std::shared_ptr<const Kernel>> small_only;
  for (const auto& k : backend_for(Device::cpu()).kernels("exp")) {
    Kernel limited = *k;
    limited.supports = [](const ir::Node&, std::span<const TensorView> in) {
      return in[0].numel() <= 4;
    };
    small_only.push_back(std::make_shared<const Kernel>(std::move(limited)));
  }
  KernelOverride hook(Device::cpu(), "exp", small_only);
  Graph g;
  Tensor x = g.placeholder("x", {"n"});
  Tensor v = g.variable("count", TensorData::from_vector<float>({0}, {1}));
  g.assign(v, g.read(v) + 1.0);
  CompileOptions options;
  options.outputs = {exp(x)};
  Executable exe = compile(g, options);
  exe.run({{"x", testing::random_tensor(DType::f32, {3})}});
  EXPECT_EQ(exe.variables().get("count").to_vector<float>()[0], 1.f);
  try {
    exe.run({{"x", testing::random_tensor(DType::f32, {9})}});
    FAIL() << "ran exp on 9 elements without a kernel";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::unsupported);
  }
  EXPECT_EQ(exe.variables().get("count").to_vector<float>()[0], 1.f);
  exe.run({{"x", testing::random_tensor(DType::f32, {2})}});
  EXPECT_EQ(exe.variables().get("count").to_vector<float>()[0], 2.f);
}

// A kernel that reads only a transposed view of its weight (as the CUDA GEMV reads W^T):
// compile's check for a kernel offers the input as the view the planner will make, so such a
// graph compiles, static or symbolic, and runs; a weight stored [K, N] still finds no kernel.
TEST(CompilePlan, KernelThatReadsOnlyATransposedViewIsFoundAtCompile) {
  std::vector<std::shared_ptr<const Kernel>> views_only;
  for (const auto& k : backend_for(Device::cpu()).kernels("matmul")) {
    if (!k->strided_inputs) continue;
    Kernel limited = *k;
    limited.supports = [inner = k->supports](const ir::Node& node, std::span<const TensorView> in) {
      const bool b_transposed = in.size() >= 2 && in[1].shape.size() == 2 &&
                                in[1].strides.size() == 2 && in[1].strides[0] == 1 &&
                                in[1].strides[1] == in[1].shape[0] && in[1].shape[0] > 1;
      return b_transposed && (!inner || inner(node, in));
    };
    views_only.push_back(std::make_shared<const Kernel>(std::move(limited)));
  }
  ASSERT_FALSE(views_only.empty()) << "no CPU matmul kernel reads strided inputs";
  KernelOverride hook(Device::cpu(), "matmul", views_only);
  for (Shape rows : {Shape{3}, Shape{"m"}}) {
    Graph g;
    Tensor x = g.placeholder("x", {rows[0], 5});
    Tensor w = g.placeholder("w", {4, 5});
    CompileOptions options;
    options.outputs = {matmul(x, transpose(w))};
    Executable exe = compile(g, options);
    TensorData xd = testing::random_tensor(DType::f32, {3, 5});
    TensorData wd = testing::random_tensor(DType::f32, {4, 5});
    std::vector<float> got = exe.run({{"x", xd}, {"w", wd}}).at(0).to_vector<float>();
    std::vector<float> xv = xd.to_vector<float>(), wv = wd.to_vector<float>();
    ASSERT_EQ(got.size(), 12u);
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 4; ++j) {
        double want = 0;
        for (int k = 0; k < 5; ++k) want += double(xv[size_t(i * 5 + k)]) * wv[size_t(j * 5 + k)];
        EXPECT_NEAR(got[size_t(i * 4 + j)], want, 1e-5 * (1 + std::abs(want))) << i << "," << j;
      }
  }
  Graph g;
  Tensor x = g.placeholder("x", {3, 5});
  Tensor w = g.placeholder("w", {5, 4});
  CompileOptions options;
  options.outputs = {matmul(x, w)};
  try {
    compile(g, options);
    FAIL() << "compiled x @ W with a kernel that reads only W^T views";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::unsupported);
  }
}

}  // namespace loom
