// Seeded mutation fuzzing of package loading: bit flips, byte changes, truncations, inserted
// and deleted bytes; half the mutants get their header's size and checksum fixed so that the
// decoder and the graph checks behind the checksum are reached. The seed references a weight
// file (format version 2), and a share of the mutations land in its table (path, size,
// checksum) and in the references' file index and offset. Every mutant must load (and
// then run, or throw loom::Error) or throw loom::Error; a mutant that fails before planning
// fails with kind io. The seed is printed; LOOM_FUZZ_SEED replays one, LOOM_FUZZ_ITERATIONS
// runs more.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>

#include "io/gguf.h"
#include "loom/package.h"
#include "package/package_format.h"
#include "package/package_load.h"
#include "test_util.h"

namespace loom {
namespace {

uint64_t env_or(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  return v ? std::strtoull(v, nullptr, 10) : fallback;
}

// Where the seed package and the weight file it references (tests/data/small.gguf) live; the
// mutants are loaded as if they were there.
std::string fuzz_dir() {
  static const std::string dir = [] {
    auto d = std::filesystem::path(::testing::TempDir()) / "loom_fuzz_refs";
    std::filesystem::create_directories(d);
    std::filesystem::copy_file(std::filesystem::path(LOOM_TEST_DATA_DIR) / "small.gguf",
                               d / "weights.gguf",
                               std::filesystem::copy_options::overwrite_existing);
    return d.string();
  }();
  return dir;
}

// A package with a symbolic placeholder, a variable, a constant, an assign and several op
// families (so attributes of many types), planned for one binding; one variable's bytes are
// the weight file's "f32" tensor, referenced.
std::vector<std::byte> seed_package() {
  Graph g;
  Tensor x = g.placeholder("x", {"batch", 4});
  io::GgufFile weights = io::GgufFile::open(fuzz_dir() + "/weights.gguf");
  auto f32 = weights.tensor_bytes(*weights.find_tensor("f32"));
  Tensor from_file =
      g.variable("from_file", TensorData::from_pointer(f32.data(), DType::f32, {2, 3}));
  Tensor w = g.variable("w", testing::random_tensor(DType::f32, {4, 4}));
  Tensor h = rms_norm(matmul(x, w), std::nullopt, 1e-5);
  Tensor s = softmax(add(h, g.constant(testing::random_tensor(DType::f32, {4}))), -1);
  Tensor r = reshape(transpose(s, {1, 0}), {4, -1});
  Tensor c = g.variable("c", TensorData::zeros(DType::f32, {4}));
  g.assign(c, sum(s, {0}, false));
  CompileOptions o;
  o.outputs = {r, argmax(s, 1), cast(s, DType::f16), exp(from_file)};
  o.plan_for = {{{"batch", 3}}};
  std::string path = fuzz_dir() + "/seed.loompkg";
  SaveOptions refer;
  refer.weight_files = {fuzz_dir() + "/weights.gguf"};
  save(compile(g, o), path, refer);
  EXPECT_EQ(referenced_files(path), std::vector<std::string>{"weights.gguf"});
  std::ifstream in(path, std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::remove(path.c_str());
  std::vector<std::byte> bytes(text.size());
  std::memcpy(bytes.data(), text.data(), text.size());
  return bytes;
}

// Where the seed's file table is (from its count to the end of its one entry), and where a
// tensor's reference (tag 10 .. offset) is: mutations aimed there reach the new fields.
std::pair<size_t, size_t> find(const std::vector<std::byte>& bytes, const std::string& text) {
  auto at = std::search(bytes.begin(), bytes.end(), text.begin(), text.end(),
                        [](std::byte b, char c) { return b == std::byte(c); });
  EXPECT_NE(at, bytes.end()) << text;
  return {size_t(at - bytes.begin()), text.size()};
}

class Mutator {
 public:
  Mutator(uint64_t seed, std::vector<std::pair<size_t, size_t>> targets)
      : rng_(seed), targets_(std::move(targets)) {}
  std::vector<std::byte> mutate(const std::vector<std::byte>& seed, bool fix_header) {
    std::vector<std::byte> b = seed;
    int count = 1 + int(below(3));
    for (int m = 0; m < count; ++m) {
      // With the header fixed afterwards, mutate the body only (and rarely truncate).
      size_t from = fix_header ? package::kHeaderBytes : 0;
      if (b.size() <= from) break;
      // A quarter of the mutations start in one of the targets (the file table, a reference).
      if (below(4) == 0) {
        auto [at, length] = targets_[below(targets_.size())];
        from = std::min(b.size() - 1, at + below(length));
      }
      switch (below(fix_header ? 5 : 4)) {
        case 0:
          b[from + below(b.size() - from)] ^= std::byte(1u << below(8));
          break;
        case 1:
          b[from + below(b.size() - from)] = std::byte(below(256));
          break;
        case 2:
          b.resize(from + below(b.size() - from + 1));
          break;
        case 3: {
          size_t at = from + below(b.size() - from);
          if (below(2))
            b.erase(b.begin() + ptrdiff_t(at),
                    b.begin() + ptrdiff_t(std::min(b.size(), at + 1 + below(8))));
          else
            b.insert(b.begin() + ptrdiff_t(at), 1 + below(8), std::byte(below(256)));
          break;
        }
        case 4: {  // a 4- or 8-byte field set to a boundary value
          static constexpr uint64_t kValues[] = {
              0, 1, 2, 3, 0x7f, 0xff, 0x7fffffff, 0xffffffff, 1ull << 32, 1ull << 62, ~0ull};
          size_t width = below(2) ? 4 : 8;
          if (b.size() < from + width) break;
          uint64_t v = kValues[below(std::size(kValues))];
          std::memcpy(b.data() + from + below(b.size() - from - width + 1), &v, width);
          break;
        }
      }
    }
    if (fix_header && b.size() >= package::kHeaderBytes) {
      std::span<const std::byte> body(b.data() + package::kHeaderBytes,
                                      b.size() - package::kHeaderBytes);
      uint64_t size = body.size(), sum = package::fnv1a64(body);
      std::memcpy(b.data() + 16, &size, 8);
      std::memcpy(b.data() + 24, &sum, 8);
    }
    return b;
  }

 private:
  uint64_t below(uint64_t n) { return n == 0 ? 0 : rng_() % n; }
  std::mt19937_64 rng_;
  std::vector<std::pair<size_t, size_t>> targets_;
};

void fuzz(bool fix_header, uint64_t iterations) {
  uint64_t seed = env_or("LOOM_FUZZ_SEED", std::random_device{}());
  std::printf("package fuzz (%s): seed %llu (LOOM_FUZZ_SEED to replay), %llu iterations\n",
              fix_header ? "header fixed" : "raw", (unsigned long long)seed,
              (unsigned long long)iterations);
  const std::vector<std::byte> base = seed_package();
  // The table: its count (4 bytes before the path's length), the path, size and checksum.
  auto [path_at, path_length] = find(base, "weights.gguf");
  std::pair<size_t, size_t> table{path_at - 8, 8 + path_length + 16};
  // The reference: "initial", then tag 10, dtype "f32", rank, extents, size, file, offset.
  auto [initial_at, initial_length] = find(base, "from_file");
  Mutator mutator(seed, {table, {initial_at, initial_length + 96}});
  const std::string label = fuzz_dir() + "/mutant.loompkg";
  std::map<std::string, int> outcomes;
  for (uint64_t i = 0; i < iterations; ++i) {
    std::vector<std::byte> bytes = mutator.mutate(base, fix_header);
    bool loaded = false;
    try {
      Executable exe = package::load_bytes(bytes, label, Device::cpu(), {});
      loaded = true;
      ++outcomes["loaded"];
      exe.run({{"x", testing::random_tensor(DType::f32, {3, 4})}});
      ++outcomes["ran"];
    } catch (const Error& e) {
      // Everything before planning is the package's fault: kind io. A loaded mutant may
      // still be refused by a run (another feed name or shape) with another kind.
      std::string key = std::string(loaded ? "run: " : "load: ") + error_kind_name(e.kind());
      ++outcomes[key];
      // The file table and the references reached: a weight file refused, or a reference
      // outside its file.
      std::string message = e.what();
      if (message.find("weight file '") != std::string::npos ||
          message.find("reach past the end of") != std::string::npos ||
          message.find("referenced tensor") != std::string::npos)
        ++outcomes["load: io, weight file or reference"];
      // (unsupported: a valid graph this device has no kernel for; device: out of memory.)
      if (!loaded && e.kind() != ErrorKind::io && e.kind() != ErrorKind::unsupported &&
          e.kind() != ErrorKind::device)
        ADD_FAILURE() << "seed " << seed << " iteration " << i << ": " << e.what();
    }
    if (::testing::Test::HasFailure()) FAIL() << "seed " << seed << " iteration " << i;
  }
  for (const auto& [what, n] : outcomes) std::printf("  %s: %d\n", what.c_str(), n);
  EXPECT_GT(outcomes["load: io"], 0);
  if (fix_header) {
    EXPECT_GT(outcomes["load: io, weight file or reference"], 0);
  }
}

TEST(PackageFuzz, RawMutants) { fuzz(false, env_or("LOOM_FUZZ_ITERATIONS", 20000) / 4); }

TEST(PackageFuzz, MutantsBehindAFixedChecksum) {
  fuzz(true, env_or("LOOM_FUZZ_ITERATIONS", 20000));
}

}  // namespace
}  // namespace loom
