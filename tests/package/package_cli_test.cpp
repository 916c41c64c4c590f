// `loom compile` and `loom view`: a graph saved with save_graph compiles into a package that
// loads and runs; view writes a self-contained page with the pass snapshots, the plan and a
// profile; bad files fail with a message and a non-zero status.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
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

namespace loom {

// `loom compile MODEL.gguf` references the GGUF (a package of the graph and plans alone);
// --embed-weights copies the weights in. Both load and give the same logits bit for bit over
// two decode steps; the referencing package moved away from the model fails naming it.
TEST(PackageCli, ModelPackageReferencesItsGguf) {
  const std::string model = std::string(LOOM_MODELS_DIR) + "/SmolLM2-135M-Instruct.Q4_1.gguf";
  if (!std::ifstream(model)) GTEST_SKIP() << "no " << model << " (scripts/fetch_model.sh)";
  std::string ref = temp_path("model_ref"), emb = temp_path("model_emb"), out;
  ASSERT_EQ(testing::run_cli("compile " + model + " -o " + ref + " --context 16", &out), 0) << out;
  EXPECT_NE(out.find("weights referenced from "), std::string::npos) << out;
  EXPECT_NE(out.find("SmolLM2-135M-Instruct.Q4_1.gguf"), std::string::npos) << out;
  ASSERT_EQ(
      testing::run_cli("compile " + model + " -o " + emb + " --context 16 --embed-weights", &out),
      0)
      << out;
  EXPECT_EQ(out.find("weights referenced from"), std::string::npos) << out;
  EXPECT_TRUE(referenced_files(emb).empty());
  ASSERT_EQ(referenced_files(ref).size(), 1u);
  const auto ref_bytes = std::filesystem::file_size(ref),
             emb_bytes = std::filesystem::file_size(emb);
  EXPECT_LT(ref_bytes * 10, emb_bytes) << ref_bytes << " against " << emb_bytes;

  Executable a = load(ref), b = load(emb);
  EXPECT_NE(a.package_note().find("read from 1 referenced file"), std::string::npos)
      << a.package_note();
  for (int64_t step = 0; step < 2; ++step) {
    Feeds feeds{{"tokens", TensorData::from_vector<int32_t>({int32_t(42 + step)}, {1, 1})},
                {"positions", TensorData::from_vector<int64_t>({step}, {1})},
                {"cache_starts", TensorData::from_vector<int64_t>({0, 0, step, 0}, {4})},
                {"last", TensorData::from_vector<int64_t>({0}, {1})}};
    auto x = a.run(feeds), y = b.run(feeds);
    ASSERT_EQ(x.size(), y.size());
    EXPECT_EQ(x[0].to_vector<float>(), y[0].to_vector<float>()) << "step " << step;
    EXPECT_EQ(x[1].to_vector<int64_t>(), y[1].to_vector<int64_t>()) << "step " << step;
  }

  // Moved into another directory, the relative path to the model finds nothing.
  auto dir = std::filesystem::path(temp_path("model_moved"));
  std::filesystem::create_directories(dir / "deeper");
  std::filesystem::copy_file(ref, dir / "deeper" / "p.loompkg");
  EXPECT_NE(testing::run_cli("view " + (dir / "deeper" / "p.loompkg").string() + " -o " +
                                 (dir / "p.html").string(),
                             &out),
            0);
  EXPECT_NE(out.find("SmolLM2-135M-Instruct.Q4_1.gguf"), std::string::npos) << out;
  EXPECT_NE(out.find("cannot be read"), std::string::npos) << out;
  std::filesystem::remove_all(dir);
  std::remove(ref.c_str());
  std::remove(emb.c_str());
}

}  // namespace loom
