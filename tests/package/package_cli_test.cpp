// `loom compile` and `loom view`: a graph saved with save_graph compiles into a package that
// loads and runs; view writes a self-contained page with the pass snapshots, the plan and a
// profile; bad files fail with a message and a non-zero status.
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>

#include "cli_util.h"
#include "loom/package.h"
#include "test_util.h"

namespace loom {
namespace {

std::string temp_path(const std::string& name) {
  return ::testing::TempDir() + "loom_pkgcli_" + name + "_" + std::to_string(::getpid());
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

}  // namespace

TEST(PackageCli, CompileASavedGraphThenViewIt) {
  Graph g;
  Tensor x = g.placeholder("x", {"n", 3});
  TensorData wv = testing::random_tensor(DType::f32, {3, 2});
  Tensor y = relu(matmul(x, g.variable("w", wv)));
  std::string graph = temp_path("graph"), pkg = temp_path("pkg"), html = temp_path("html");
  save_graph(g, {y}, graph);
  EXPECT_FALSE(is_compiled_package(graph));

  std::string out;
  ASSERT_EQ(testing::run_cli("compile " + graph + " -o " + pkg + " --bind n=4", &out), 0) << out;
  EXPECT_NE(out.find("1 plans for cpu"), std::string::npos) << out;
  EXPECT_TRUE(is_compiled_package(pkg));
  Executable exe = load(pkg);
  TensorData xv = testing::random_tensor(DType::f32, {4, 3});
  auto got = exe.run({{"x", xv}});
  EXPECT_FALSE(exe.last_run_stats().planned);
  auto xs = testing::to_doubles(xv), ws = testing::to_doubles(wv);
  std::vector<double> want(8);
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 2; ++j) {
      double acc = 0;
      for (int k = 0; k < 3; ++k) acc += xs[size_t(i * 3 + k)] * ws[size_t(k * 2 + j)];
      want[size_t(i * 2 + j)] = std::max(acc, 0.0);
    }
  testing::expect_close(got[0], want, testing::Tolerance{1e-5, 1e-6});

  // The saved graph: every pass's snapshot; the package: a profile on random feeds.
  ASSERT_EQ(testing::run_cli("view " + graph + " -o " + html + " --bind n=4", &out), 0) << out;
  std::string page = read_text(html);
  EXPECT_NE(page.find("id=\"loom-data\""), std::string::npos);
  for (const auto& pass : pass_names())
    EXPECT_NE(page.find("\"name\":\"" + pass + "\""), std::string::npos) << pass;
  EXPECT_NE(page.find("\"name\":\"lowered\""), std::string::npos);
  ASSERT_EQ(testing::run_cli("view " + pkg + " -o " + html + " --profile", &out), 0) << out;
  EXPECT_NE(out.find("profiled 2 steps"), std::string::npos) << out;
  page = read_text(html);
  EXPECT_NE(page.find("\"profile\":[{"), std::string::npos);
  EXPECT_NE(page.find("loaded package"), std::string::npos);
  // Self-contained: nothing is fetched.
  EXPECT_EQ(page.find("src=\"http"), std::string::npos);
  EXPECT_EQ(page.find("<link"), std::string::npos);

  // package-bench: compile against load; the loaded copy kept its plan; a package as input
  // is refused.
  std::string kept = temp_path("bench");
  ASSERT_EQ(testing::run_cli("package-bench " + graph + " --bind n=4 -r 2 -o " + kept, &out), 0)
      << out;
  EXPECT_NE(out.find("| load of the package |"), std::string::npos) << out;
  EXPECT_NE(out.find("first run after load / steady (median of 2)"), std::string::npos) << out;
  EXPECT_NE(out.find("kernels and tactics from the package"), std::string::npos) << out;
  EXPECT_TRUE(is_compiled_package(kept));
  std::remove(kept.c_str());
  EXPECT_NE(testing::run_cli("package-bench " + pkg, &out), 0);
  EXPECT_NE(out.find("not a package"), std::string::npos) << out;

  // A damaged package fails with the reader's message.
  std::string bytes = read_text(pkg);
  std::ofstream(pkg, std::ios::binary | std::ios::trunc) << bytes.substr(0, bytes.size() / 2);
  EXPECT_EQ(testing::run_cli("view " + pkg + " -o " + html, &out), 1);
  EXPECT_NE(out.find("loom view: " + pkg + ": bad package: body size"), std::string::npos) << out;
  EXPECT_EQ(testing::run_cli("compile " + temp_path("missing") + " -o " + pkg, &out), 1);
  EXPECT_NE(out.find("loom compile:"), std::string::npos) << out;
  // A malformed binding is refused with what it should be.
  EXPECT_EQ(testing::run_cli("compile " + graph + " -o " + pkg + " --bind n", &out), 1);
  EXPECT_NE(out.find("SYMBOL=SIZE"), std::string::npos) << out;
  for (const auto& p : {graph, pkg, html}) std::remove(p.c_str());
}

}  // namespace loom

namespace loom {

// The bundled model's decode step (scripts/fetch_model.sh puts it in models/): every layer's
// weights are in the page, under the names the viewer folds layers by.
TEST(PackageCli, ViewOfTheBundledModel) {
  const std::string model = std::string(LOOM_MODELS_DIR) + "/SmolLM2-135M-Instruct.Q4_1.gguf";
  if (!std::ifstream(model)) GTEST_SKIP() << "no " << model << " (scripts/fetch_model.sh)";
  std::string html = temp_path("model_html"), out;
  ASSERT_EQ(testing::run_cli("view " + model + " -o " + html + " --context 16", &out), 0) << out;
  std::string page = read_text(html);
  for (int layer : {0, 29})
    EXPECT_NE(page.find("\"name\":\"blk." + std::to_string(layer) + ".attn_q.weight\""),
              std::string::npos)
        << layer;
  EXPECT_NE(page.find("\"name\":\"inplace_state\""), std::string::npos);
  std::remove(html.c_str());
}

}  // namespace loom
