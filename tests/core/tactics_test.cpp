// Kernel and tactic selection: every kernel that supports a node is a candidate, the fastest
// by measurement wins, the choice shows in the dump, and a saved tactic cache makes a later
// compile time nothing.
#include <chrono>
#include <cstdio>
#include <fstream>

#include "kernel_test_hooks.h"
#include "test_util.h"

namespace loom {

namespace {

std::vector<double> naive_matmul(const TensorData& a, const TensorData& b) {
  auto x = testing::to_doubles(a), y = testing::to_doubles(b);
  int64_t m = a.shape()[0], k = a.shape()[1], n = b.shape()[1];
  std::vector<double> c(size_t(m * n));
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j)
      for (int64_t p = 0; p < k; ++p)
        c[size_t(i * n + j)] += x[size_t(i * k + p)] * y[size_t(p * n + j)];
  return c;
}

// The dump's line for the matmul step.
std::string matmul_line(const std::string& dump) {
  size_t at = dump.find(" matmul -> ");
  if (at == std::string::npos) return "";
  return dump.substr(at, dump.find('\n', at) - at);
}

std::string temp_path(const std::string& name) {
  return ::testing::TempDir() + "loom_" + name + "_" + std::to_string(::getpid());
}

}  // namespace

TEST(Tactics, FastestOfSeveralKernelsIsChosenAndShown) {
  testing::SlowMatmulGraph s(std::chrono::milliseconds(20), {5, 7}, {7, 3});
  size_t before = tactic_timings();
  Executable exe = compile(s.g, s.options);  // static shapes: planned and timed here
  EXPECT_EQ(tactic_timings() - before, 2u);
  std::string line = matmul_line(exe.dump());
  EXPECT_NE(line.find("cpu.matmul.openblas"), std::string::npos) << exe.dump();
  EXPECT_NE(line.find("(2 tried)"), std::string::npos) << line;
  EXPECT_NE(line.find(" ms "), std::string::npos) << line;
  TensorData av = testing::random_tensor(DType::f32, {5, 7}),
             bv = testing::random_tensor(DType::f32, {7, 3});
  auto out = exe.run({{"a", av}, {"b", bv}});
  testing::expect_close(out[0], naive_matmul(av, bv), testing::Tolerance{1e-5, 1e-5});
  EXPECT_FALSE(exe.last_run_stats().planned);
  // A steady-state run times nothing.
  before = tactic_timings();
  exe.run({{"a", av}, {"b", bv}});
  EXPECT_EQ(tactic_timings(), before);

  // By rule (no timing), the first registered kernel runs: the slow one, and still right.
  clear_tactic_cache();
  s.options.time_tactics = false;
  Executable by_rule = compile(s.g, s.options);
  EXPECT_NE(matmul_line(by_rule.dump()).find("test.matmul.slow"), std::string::npos)
      << by_rule.dump();
  testing::expect_close(by_rule.run({{"a", av}, {"b", bv}})[0], naive_matmul(av, bv),
                        testing::Tolerance{1e-5, 1e-5});
}

TEST(Tactics, SavedCacheMakesALaterCompileTimeNothing) {
  testing::SlowMatmulGraph s(std::chrono::milliseconds(20), {"n", 6}, {6, 4});
  std::string path = temp_path("tactics");
  std::remove(path.c_str());
  s.options.tactic_cache = path;
  size_t before = tactic_timings();
  {
    Executable exe = compile(s.g, s.options);  // symbolic: nothing planned yet
    EXPECT_EQ(tactic_timings(), before);
    exe.run({{"a", testing::random_tensor(DType::f32, {3, 6})},
             {"b", testing::random_tensor(DType::f32, {6, 4})}});
    EXPECT_EQ(tactic_timings() - before, 2u);
  }
  ASSERT_TRUE(std::ifstream(path).good()) << "no cache file written at " << path;

  clear_tactic_cache();  // as in a new process: only the file knows
  before = tactic_timings();
  Executable again = compile(s.g, s.options);
  TensorData av = testing::random_tensor(DType::f32, {3, 6}),
             bv = testing::random_tensor(DType::f32, {6, 4});
  auto out = again.run({{"a", av}, {"b", bv}});
  EXPECT_EQ(tactic_timings(), before);
  std::string line = matmul_line(again.dump());
  EXPECT_NE(line.find("cpu.matmul.openblas"), std::string::npos) << again.dump();
  EXPECT_NE(line.find("(2 tried)"), std::string::npos) << line;
  testing::expect_close(out[0], naive_matmul(av, bv), testing::Tolerance{1e-5, 1e-5});
  // Another extent is another key: timed again.
  again.run({{"a", testing::random_tensor(DType::f32, {9, 6})}, {"b", bv}});
  EXPECT_EQ(tactic_timings() - before, 2u);
  std::remove(path.c_str());
}

TEST(Tactics, MalformedCacheFileIsAnIoError) {
  std::string path = temp_path("bad_tactics");
  std::ofstream(path) << "loom-tactic-cache 1\nkey only\n";
  Graph g;
  Tensor x = g.placeholder("x", {2});
  CompileOptions options;
  options.outputs = {exp(x)};
  options.tactic_cache = path;
  try {
    compile(g, options);
    FAIL() << "a malformed tactic cache was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::io);
    EXPECT_NE(std::string(e.what()).find("line 2"), std::string::npos) << e.what();
  }
  std::remove(path.c_str());
}

}  // namespace loom
