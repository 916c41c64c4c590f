// Executables are thread-safe: threads sharing one executable get the results a serial run
// gives, and executables sharing a VariableStore are ordered by it (no lost update).
#include <thread>

#include "test_util.h"

namespace loom {

TEST(Concurrency, ThreadsSharingAnExecutableMatchSerialRuns) {
  Graph g;
  Tensor x = g.placeholder("x", {"n", 4});
  CompileOptions options;
  options.outputs = {softmax(x * 2.0, -1)};
  options.max_cached_plans = 2;  // threads' bindings evict each other's plans
  Executable exe = compile(g, options);
  constexpr int kThreads = 4, kRuns = 40;
  std::vector<TensorData> inputs;
  std::vector<std::vector<float>> want;
  for (int t = 0; t < kThreads; ++t) {
    inputs.push_back(testing::random_tensor(DType::f32, {int64_t(2 + t), 4}));
    want.push_back(exe.run({{"x", inputs.back()}})[0].to_vector<float>());
  }
  std::vector<int> mismatches(kThreads, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      for (int r = 0; r < kRuns; ++r)
        if (exe.run({{"x", inputs[size_t(t)]}})[0].to_vector<float>() != want[size_t(t)])
          ++mismatches[size_t(t)];
    });
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(mismatches[size_t(t)], 0) << "thread " << t;
}

TEST(Concurrency, ExecutablesSharingAStoreLoseNoUpdate) {
  auto store = std::make_shared<VariableStore>();
  auto counter = [&](double step) {
    Graph g;
    Tensor v = g.variable("count", TensorData::from_vector<float>({0}, {1}));
    g.assign(v, g.read(v) + step);
    CompileOptions options;
    options.variables = store;
    return compile(g, options);
  };
  Executable add_one = counter(1.0), add_two = counter(2.0);
  constexpr int kRuns = 200;
  std::thread a([&] {
    for (int r = 0; r < kRuns; ++r) add_one.run({});
  });
  std::thread b([&] {
    for (int r = 0; r < kRuns; ++r) add_two.run({});
  });
  a.join();
  b.join();
  EXPECT_EQ(store->get("count").to_vector<float>()[0], float(3 * kRuns));
}

TEST(Concurrency, ExecutablesWithTheirOwnStoresRunConcurrently) {
  auto make = [] {
    Graph g;
    Tensor x = g.placeholder("x", {64});
    Tensor v = g.variable("acc", TensorData::zeros(DType::f32, {64}));
    g.assign(v, g.read(v) + x);
    CompileOptions options;
    options.outputs = {exp(x)};
    return compile(g, options);
  };
  Executable e1 = make(), e2 = make();
  TensorData x = testing::random_tensor(DType::f32, {64});
  constexpr int kRuns = 100;
  std::thread a([&] {
    for (int r = 0; r < kRuns; ++r) e1.run({{"x", x}});
  });
  std::thread b([&] {
    for (int r = 0; r < kRuns; ++r) e2.run({{"x", x}});
  });
  a.join();
  b.join();
  auto xv = x.to_vector<float>();
  for (Executable* e : {&e1, &e2}) {
    auto acc = e->variables().get("acc").to_vector<float>();
    float want = 0;
    for (int r = 0; r < kRuns; ++r) want += xv[7];
    EXPECT_FLOAT_EQ(acc[7], want);
  }
}

}  // namespace loom
