// Packages: save, load, run gives the outputs of the compiled executable; loading times no
// tactic and plans nothing at the first run; a package from another device re-chooses its
// tactics and says so; bad files are loom::Error(io) naming the problem.
#include "loom/package.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>

#include "core/kernel_test_hooks.h"
#include "package/package_format.h"
#include "test_util.h"

namespace loom {

namespace {

std::string temp_path(const std::string& name) {
  return ::testing::TempDir() + "loom_pkg_" + name + "_" + std::to_string(::getpid());
}

std::vector<std::byte> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::byte> b(s.size());
  std::memcpy(b.data(), s.data(), s.size());
  return b;
}

void write_file(const std::string& path, const std::vector<std::byte>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
}

// Decodes a saved package, lets `edit` change it, and writes it back (checksum recomputed).
void rewrite(const std::string& path, const std::function<void(package::PackageContents&)>& edit) {
  auto contents = package::decode_package(read_file(path), path);
  edit(contents);
  write_file(path, package::encode_package(contents));
}

// x[2,3] @ w[3,4] + b, softmax, and a counter variable incremented each run.
struct SmallModel {
  Graph g;
  Tensor x, out, count_out;
  TensorData w = testing::random_tensor(DType::f32, {3, 4});
  TensorData b = testing::random_tensor(DType::f32, {4});
  SmallModel() {
    x = g.placeholder("x", {"batch", 3});
    Tensor wv = g.variable("w", w);
    Tensor bias = g.constant(b);
    // reshape's -1 (an attribute dim that is no size) must survive the round trip.
    out = reshape(softmax(add(matmul(x, wv), bias)), {-1, 4});
    Tensor counter = g.variable("count", TensorData::zeros(DType::i64, {1}));
    count_out = add(g.read(counter), g.constant(1.0, DType::i64));
    g.assign(counter, count_out);
  }
  CompileOptions options() const {
    CompileOptions o;
    o.outputs = {out, count_out};
    o.plan_for = {{{"batch", 2}}};
    return o;
  }
};

std::vector<double> reference(const TensorData& x, const TensorData& w, const TensorData& b) {
  auto xv = testing::to_doubles(x), wv = testing::to_doubles(w), bv = testing::to_doubles(b);
  int64_t m = x.shape()[0];
  std::vector<double> out(size_t(m * 4));
  for (int64_t i = 0; i < m; ++i) {
    double row[4], most = -1e300, sum = 0;
    for (int j = 0; j < 4; ++j) {
      row[j] = bv[size_t(j)];
      for (int k = 0; k < 3; ++k) row[j] += xv[size_t(i * 3 + k)] * wv[size_t(k * 4 + j)];
      most = std::max(most, row[j]);
    }
    for (int j = 0; j < 4; ++j) sum += std::exp(row[j] - most);
    for (int j = 0; j < 4; ++j) out[size_t(i * 4 + j)] = std::exp(row[j] - most) / sum;
  }
  return out;
}

}  // namespace

TEST(Package, RoundTripGivesTheSameOutputsWithoutPlanning) {
  SmallModel m;
  Executable exe = compile(m.g, m.options());
  TensorData x = testing::random_tensor(DType::f32, {2, 3});
  auto want = exe.run({{"x", x}});
  std::string path = temp_path("roundtrip");
  save(exe, path);

  Executable loaded = load(path);
  EXPECT_NE(loaded.package_note().find("from the package"), std::string::npos)
      << loaded.package_note();
  EXPECT_EQ(loaded.cached_plans(), 1u);
  auto got = loaded.run({{"x", x}});
  EXPECT_FALSE(loaded.last_run_stats().planned);  // the saved binding was planned at load
  ASSERT_EQ(got.size(), 2u);
  testing::expect_close(got[0], reference(x, m.w, m.b), testing::Tolerance{1e-5, 1e-6});
  EXPECT_EQ(got[0].to_vector<float>(), want[0].to_vector<float>());
  // The counter was saved at 1 (one run before saving): the loaded copy continues from there.
  EXPECT_EQ(got[1].to_vector<int64_t>(), std::vector<int64_t>{2});
  EXPECT_EQ(loaded.variables().get("count").to_vector<int64_t>(), std::vector<int64_t>{2});
  // Same graph, same plan: the dumps agree line for line.
  EXPECT_EQ(loaded.dump(), exe.dump());
  // Another binding plans as usual.
  TensorData x5 = testing::random_tensor(DType::f32, {5, 3});
  testing::expect_close(loaded.run({{"x", x5}})[0], reference(x5, m.w, m.b),
                        testing::Tolerance{1e-5, 1e-6});
  EXPECT_TRUE(loaded.last_run_stats().planned);
  std::remove(path.c_str());
}

TEST(Package, WeightsSetAfterCompileAreSaved) {
  SmallModel m;
  Executable exe = compile(m.g, m.options());
  TensorData w2 = testing::random_tensor(DType::f32, {3, 4});
  exe.variables().set("w", w2);
  std::string path = temp_path("weights");
  save(exe, path);
  Executable loaded = load(path);
  TensorData x = testing::random_tensor(DType::f32, {2, 3});
  testing::expect_close(loaded.run({{"x", x}})[0], reference(x, w2, m.b),
                        testing::Tolerance{1e-5, 1e-6});
  std::remove(path.c_str());
}

TEST(Package, LoadingTimesNoTacticAndKeepsTheChoice) {
  testing::SlowMatmulGraph s(std::chrono::milliseconds(10), {5, 7}, {7, 3});
  size_t before = tactic_timings();
  Executable exe = compile(s.g, s.options);
  ASSERT_EQ(tactic_timings() - before, 2u);
  std::string path = temp_path("tactics");
  save(exe, path);

  clear_tactic_cache();  // as in a new process: only the package knows the choice
  before = tactic_timings();
  Executable loaded = load(path);
  EXPECT_EQ(tactic_timings(), before);
  EXPECT_NE(loaded.dump().find("cpu.matmul.openblas"), std::string::npos) << loaded.dump();
  EXPECT_NE(loaded.dump().find("(2 tried)"), std::string::npos) << loaded.dump();
  TensorData av = testing::random_tensor(DType::f32, {5, 7}),
             bv = testing::random_tensor(DType::f32, {7, 3});
  auto got = loaded.run({{"a", av}, {"b", bv}});
  EXPECT_EQ(got[0].to_vector<float>(), exe.run({{"a", av}, {"b", bv}})[0].to_vector<float>());
  EXPECT_EQ(tactic_timings(), before);

  // Made on another device: the tactics are chosen again (timed), and the note says so.
  rewrite(path, [](package::PackageContents& c) { c.device_identity = "cuda Some Other GPU"; });
  clear_tactic_cache();
  before = tactic_timings();
  Executable moved = load(path);
  EXPECT_EQ(tactic_timings() - before, 2u);
  EXPECT_NE(moved.package_note().find("made on cuda Some Other GPU"), std::string::npos)
      << moved.package_note();
  EXPECT_NE(moved.package_note().find("chosen again"), std::string::npos);
  // And from another Loom version.
  rewrite(path, [](package::PackageContents& c) {
    c.device_identity = "cpu";
    c.loom_version = "0.0.1";
  });
  clear_tactic_cache();
  before = tactic_timings();
  Executable older = load(path);
  EXPECT_EQ(tactic_timings() - before, 2u);
  EXPECT_NE(older.package_note().find("Loom 0.0.1"), std::string::npos) << older.package_note();
  std::remove(path.c_str());
}

TEST(Package, MemoryPlanIsSavedAndMatchesTheLoadedOne) {
  SmallModel m;
  Executable exe = compile(m.g, m.options());
  std::string path = temp_path("memory");
  save(exe, path);
  auto c = package::decode_package(read_file(path), path);
  ASSERT_EQ(c.plans.size(), 1u);
  EXPECT_EQ(c.plans[0].key, std::vector<int64_t>{2});
  EXPECT_EQ(c.plans[0].arena_bytes, exe.arena_bytes());
  EXPECT_FALSE(c.plans[0].buffers.empty());
  // Values alive at the same time never share bytes.
  const auto& bufs = c.plans[0].buffers;
  for (size_t i = 0; i < bufs.size(); ++i)
    for (size_t j = i + 1; j < bufs.size(); ++j) {
      bool together = !(bufs[i].last < bufs[j].first || bufs[j].last < bufs[i].first);
      bool overlap = bufs[i].offset < bufs[j].offset + bufs[j].bytes &&
                     bufs[j].offset < bufs[i].offset + bufs[i].bytes;
      EXPECT_FALSE(together && overlap) << i << " and " << j;
    }
  Executable loaded = load(path);
  EXPECT_EQ(loaded.package_note().find("arena"), std::string::npos) << loaded.package_note();
  std::remove(path.c_str());
}

TEST(Package, BadFilesAreIoErrorsNamingTheProblem) {
  SmallModel m;
  Executable exe = compile(m.g, m.options());
  std::string path = temp_path("bad");
  save(exe, path);
  auto good = read_file(path);
  auto expect_io = [&](const std::vector<std::byte>& bytes, const std::string& words) {
    write_file(path, bytes);
    std::string message;
    EXPECT_EQ(testing::error_kind([&] { load(path); }, &message), ErrorKind::io) << message;
    EXPECT_NE(message.find(words), std::string::npos) << message;
  };
  expect_io(std::vector<std::byte>(good.begin(), good.begin() + 100), "truncated");
  expect_io(std::vector<std::byte>(good.begin(), good.begin() + 20), "truncated");
  auto flipped = good;
  flipped[good.size() / 2] ^= std::byte{0x10};
  expect_io(flipped, "checksum");
  auto magic = good;
  magic[0] = std::byte{'X'};
  expect_io(magic, "not a Loom package");
  auto version = good;
  version[8] = std::byte{9};
  expect_io(version, "format version 9");
  auto longer = good;
  longer.push_back(std::byte{0});
  expect_io(longer, "body size");

  write_file(path, good);
  rewrite(path, [](package::PackageContents& c) { c.nodes[1].op = "no_such_op"; });
  expect_io(read_file(path), "unknown op");
  write_file(path, good);
  rewrite(path, [](package::PackageContents& c) {
    for (auto& n : c.nodes)
      if (n.op == "matmul") n.op_version = 7;
  });
  expect_io(read_file(path), "op version 7 in the package");
  write_file(path, good);
  rewrite(path, [](package::PackageContents& c) {
    for (auto& n : c.nodes)
      if (n.op == "softmax") n.attrs.set("axis", int64_t(5));
  });
  expect_io(read_file(path), "softmax");
  write_file(path, good);
  rewrite(path, [](package::PackageContents& c) {
    for (auto& n : c.nodes)
      if (n.op == "matmul") n.outputs[0].shape[1] = Dim(int64_t(9));
  });
  expect_io(read_file(path), "differ from inferred");
  write_file(path, good);
  rewrite(path, [](package::PackageContents& c) {
    for (auto& n : c.nodes)
      if (n.op == "assign") n.inputs[0] = n.inputs[1];  // an assign to a non-variable
  });
  expect_io(read_file(path), "must be a variable");
  std::remove(path.c_str());

  std::string missing;
  EXPECT_EQ(testing::error_kind([&] { load(temp_path("missing")); }, &missing), ErrorKind::io);
  CompileOptions with_outputs;
  with_outputs.keep_pass_dumps = true;
  EXPECT_EQ(testing::error_kind([&] { load(path, Device::cpu(), with_outputs); }),
            ErrorKind::value);
}

}  // namespace loom
