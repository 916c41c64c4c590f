// Variables without data, adopted read-only buffers, copy-on-write, and weights held once:
// checked by values and by resident memory (VmRSS).
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>

#include "test_util.h"

namespace loom {
namespace {

// Resident memory of this process in bytes (VmRSS of /proc/self/status).
int64_t resident_bytes() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::atoll(line.c_str() + 6) * 1024;
  return -1;
}

// AddressSanitizer's shadow memory and quarantine make RSS say little about Loom's copies.
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kAsan = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kAsan = true;
#else
constexpr bool kAsan = false;
#endif
#else
constexpr bool kAsan = false;
#endif

constexpr int64_t kMiB = int64_t(1) << 20;

ErrorKind kind_of(const std::function<void()>& fn, std::string* message) {
  try {
    fn();
  } catch (const Error& e) {
    *message = e.what();
    return e.kind();
  }
  ADD_FAILURE() << "expected loom::Error";
  return ErrorKind::internal;
}

// A read-only shared mapping of a sparse file of `bytes` zeros in /tmp, as a TensorData
// whose owner unmaps it (the file is unlinked at once).
TensorData map_sparse_zeros(int64_t bytes, DType dtype, Extents shape) {
  char path[] = "/tmp/loom_adopt_XXXXXX";
  int fd = mkstemp(path);
  if (fd < 0) return {};
  unlink(path);
  if (ftruncate(fd, bytes) != 0) {
    close(fd);
    return {};
  }
  void* data = mmap(nullptr, size_t(bytes), PROT_READ, MAP_SHARED, fd, 0);
  close(fd);
  if (data == MAP_FAILED) return {};
  std::shared_ptr<void> owner(data, [bytes](void* p) { munmap(p, size_t(bytes)); });
  Strides strides = contiguous_strides(shape);
  return TensorData::wrap(data, dtype, std::move(shape), std::move(strides), Device::cpu(), owner);
}

TEST(VariableWithoutData, RunWithoutAValueIsAnErrorNamingIt) {
  Graph g;
  Tensor x = g.placeholder("x", {3});
  Tensor w = g.variable("w", Extents{3}, DType::f32);
  EXPECT_EQ(w.shape(), to_shape({3}));
  EXPECT_EQ(w.dtype(), DType::f32);
  CompileOptions options;
  options.outputs = {x * w};
  Executable exe = compile(g, options);  // compiles; the value comes later
  Feeds feeds{{"x", TensorData::from_vector<float>({1, 2, 3}, {3})}};
  std::string message;
  EXPECT_EQ(kind_of([&] { exe.run(feeds); }, &message), ErrorKind::value);
  EXPECT_NE(message.find("'w'"), std::string::npos) << message;
  EXPECT_NE(message.find("no value"), std::string::npos) << message;

  // A value of another shape or dtype is refused at the run, naming both.
  exe.variables().adopt("w", TensorData::from_vector<float>({1, 2}, {2}));
  EXPECT_EQ(kind_of([&] { exe.run(feeds); }, &message), ErrorKind::shape);
  EXPECT_NE(message.find("[3]"), std::string::npos) << message;
  auto store = std::make_shared<VariableStore>();
  store->declare("w", TensorData::from_vector<int32_t>({1, 2, 3}, {3}));
  options.variables = store;
  EXPECT_EQ(kind_of([&] { compile(g, options); }, &message), ErrorKind::dtype);

  // Supplied after compile: the run plans then and reads it.
  auto good = std::make_shared<VariableStore>();
  options.variables = good;
  Executable exe2 = compile(g, options);
  good->declare("w", TensorData::from_vector<float>({10, 20, 30}, {3}));
  EXPECT_EQ(exe2.run(feeds).at(0).to_vector<float>(), (std::vector<float>{10, 40, 90}));

  EXPECT_EQ(kind_of([&] { g.variable("w", Extents{2}, DType::f32); }, &message), ErrorKind::value);
  EXPECT_EQ(kind_of([&] { g.variable("v", Extents{-1}, DType::f32); }, &message), ErrorKind::shape);
}

TEST(VariableAdopt, ReadsInPlaceAndCopiesOnTheFirstWrite) {
  std::vector<float> values{1, 2, 3, 4};
  auto keep = std::make_shared<std::vector<float>>(values);
  TensorData outside = TensorData::wrap(keep->data(), DType::f32, {4}, {1}, Device::cpu(), keep);
  Graph g;
  Tensor w = g.variable("w", Extents{4}, DType::f32);
  Tensor acc = g.variable("acc", Extents{4}, DType::f32);
  g.assign(acc, g.read(acc) + w);
  auto store = std::make_shared<VariableStore>();
  store->adopt("w", outside);
  store->adopt("acc", outside);
  EXPECT_TRUE(store->is_shared("acc"));
  CompileOptions options;
  options.outputs = {w * 2.0};
  options.variables = store;
  Executable exe = compile(g, options);
  // w is only read: the store reads the caller's bytes. acc is assigned: compile made the
  // store's own copy, so the adopted buffer is never written.
  EXPECT_EQ(store->get("w").data(), keep->data());
  EXPECT_TRUE(store->is_shared("w"));
  EXPECT_FALSE(store->is_shared("acc"));
  EXPECT_NE(store->get("acc").data(), keep->data());
  EXPECT_EQ(exe.run({}).at(0).to_vector<float>(), (std::vector<float>{2, 4, 6, 8}));
  exe.run({});
  EXPECT_EQ(store->get("acc").to_vector<float>(), (std::vector<float>{3, 6, 9, 12}));
  EXPECT_EQ(*keep, values);

  // set() on a shared variable copies too, and the executable's plans follow the new buffer.
  store->set("w", TensorData::from_vector<float>({5, 6, 7, 8}, {4}));
  EXPECT_FALSE(store->is_shared("w"));
  EXPECT_EQ(*keep, values);
  EXPECT_EQ(exe.run({}).at(0).to_vector<float>(), (std::vector<float>{10, 12, 14, 16}));
  EXPECT_EQ(store->get("acc").to_vector<float>(), (std::vector<float>{8, 12, 16, 20}));

  // Adopting again replaces the buffer; the plan is made again and reads the new one.
  auto other = std::make_shared<std::vector<float>>(std::vector<float>{0, 1, 0, 1});
  store->adopt("w", TensorData::wrap(other->data(), DType::f32, {4}, {1}, Device::cpu(), other));
  EXPECT_EQ(exe.run({}).at(0).to_vector<float>(), (std::vector<float>{0, 2, 0, 2}));
  EXPECT_TRUE(exe.last_run_stats().planned);
}

TEST(VariableAdopt, RefusesStridedOtherDeviceAndOtherTypes) {
  VariableStore store;
  TensorData m = TensorData::from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 3});
  std::string message;
  EXPECT_EQ(kind_of(
                [&] {
                  store.adopt("t", m.view({3, 2}, {1, 3}, 0));
                },
                &message),
            ErrorKind::value);
  EXPECT_NE(message.find("strided"), std::string::npos) << message;
  store.adopt("m", m);
  EXPECT_EQ(kind_of(
                [&] {
                  store.adopt("m", TensorData::zeros(DType::f32, {3, 2}));
                },
                &message),
            ErrorKind::shape);
  EXPECT_EQ(kind_of(
                [&] {
                  store.adopt("m", TensorData::zeros(DType::i32, {2, 3}));
                },
                &message),
            ErrorKind::dtype);
  EXPECT_EQ(kind_of([&] { store.adopt("e", TensorData()); }, &message), ErrorKind::value);
}

// Two executables over one store (prefill and decode) read one copy of a weight, and a
// third that assigns it makes the store's own copy, which the other two then read.
TEST(VariableAdopt, SharedStoreKeepsOneCopyAndPlansFollowCopyOnWrite) {
  auto keep = std::make_shared<std::vector<float>>(std::vector<float>{1, 2, 3});
  TensorData weight = TensorData::wrap(keep->data(), DType::f32, {3}, {1}, Device::cpu(), keep);
  auto store = std::make_shared<VariableStore>();
  store->adopt("w", weight);
  auto build = [&](bool writes) {
    Graph g;
    Tensor x = g.placeholder("x", {3});
    Tensor w = g.variable("w", Extents{3}, DType::f32);
    if (writes) g.assign(w, g.read(w) * 10.0);
    CompileOptions options;
    options.outputs = {x + w};
    options.variables = store;
    return compile(g, options);
  };
  Executable a = build(false), b = build(false);
  Feeds feeds{{"x", TensorData::from_vector<float>({0, 0, 0}, {3})}};
  EXPECT_EQ(a.run(feeds)[0].to_vector<float>(), (std::vector<float>{1, 2, 3}));
  EXPECT_EQ(b.run(feeds)[0].to_vector<float>(), (std::vector<float>{1, 2, 3}));
  EXPECT_EQ(store->get("w").data(), keep->data());
  Executable c = build(true);
  EXPECT_FALSE(store->is_shared("w"));
  c.run(feeds);  // w becomes 10, 20, 30 in the store's copy
  EXPECT_EQ((*keep), (std::vector<float>{1, 2, 3}));
  EXPECT_EQ(a.run(feeds)[0].to_vector<float>(), (std::vector<float>{10, 20, 30}));
  EXPECT_EQ(b.run(feeds)[0].to_vector<float>(), (std::vector<float>{10, 20, 30}));
}

TEST(VariableMemory, AdoptingAOneGiBMappedVariableAddsLessThan1_1GiB) {
  if (kAsan) GTEST_SKIP() << "resident memory is not measurable under AddressSanitizer";
  const int64_t bytes = int64_t(1) << 30;
  TensorData mapped = map_sparse_zeros(bytes, DType::f32, {bytes / 4});
  if (!mapped.defined()) GTEST_SKIP() << "cannot map a 1 GiB sparse file in /tmp";
  int64_t before = resident_bytes();
  Graph g;
  Tensor w = g.variable("w", Extents{bytes / 4}, DType::f32);
  auto store = std::make_shared<VariableStore>();
  store->adopt("w", mapped);
  CompileOptions options;
  options.outputs = {sum(w)};  // reads every page
  options.variables = store;
  Executable exe = compile(g, options);
  float total = exe.run({}).at(0).to_vector<float>().at(0);
  EXPECT_EQ(total, 0.f);
  int64_t grown = resident_bytes() - before;
  // The mapping's pages (1 GiB) count once; a copy would add another GiB.
  EXPECT_LT(grown, bytes + bytes / 10) << grown / kMiB << " MiB";
}

// A 256 MiB weight, as a variable or a constant, is held once after compile (the graph's
// value, the program and the store share it); an assigned variable adds one copy, the store's.
TEST(VariableMemory, CompileHoldsA256MiBWeightOnce) {
  if (kAsan) GTEST_SKIP() << "resident memory is not measurable under AddressSanitizer";
  const int64_t n = (int64_t(256) << 20) / 4;
  for (const char* kind : {"variable", "constant", "two executables", "assigned"}) {
    SCOPED_TRACE(kind);
    int64_t before = resident_bytes();
    {
      TensorData data = TensorData::empty(DType::f32, {n});
      std::memset(data.data(), 0, data.nbytes());  // resident now
      Graph g;
      Tensor w = std::string(kind) == "constant" ? g.constant(data) : g.variable("w", data);
      data = TensorData();  // the graph's reference only (a constant keeps its own copy)
      if (std::string(kind) == "assigned") g.assign(w, g.read(w) + 1.0);
      auto store = std::make_shared<VariableStore>();
      CompileOptions options;
      options.outputs = {sum(w)};
      options.variables = store;
      Executable exe = compile(g, options);
      exe.run({});
      Executable second;
      if (std::string(kind) == "two executables") {
        second = compile(g, options);
        second.run({});
      }
      int64_t grown = resident_bytes() - before;
      // The arenas hold intermediates (assigned: read(w) + 1, 256 MiB), not weights.
      int64_t arenas = int64_t(exe.arena_bytes());
      if (std::string(kind) == "two executables") arenas += int64_t(second.arena_bytes());
      int64_t copies = std::string(kind) == "assigned" ? 2 : 1;
      EXPECT_LT(grown, copies * 256 * kMiB + arenas + 48 * kMiB)
          << grown / kMiB << " MiB, arenas " << arenas / kMiB << " MiB";
    }
  }
}

}  // namespace
}  // namespace loom
