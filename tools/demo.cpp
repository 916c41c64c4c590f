// `loom demo`: builds a small two-layer network, compiles it, runs it, and shows what the
// compiler did. The quickest check that an installation works.
#include <fmt/format.h>

#include <random>

#include "commands.h"
#include "flags.h"
#include "loom/loom.h"

namespace loom::tools {

static TensorData random_weights(Extents shape, std::mt19937& gen) {
  std::normal_distribution<float> dist(0.f, 0.5f);
  std::vector<float> values(size_t(numel(shape)));
  for (auto& v : values) v = dist(gen);
  return TensorData::from_floats(values, DType::f32, shape);
}

static int run_demo(const std::string& device_name, int64_t batch, bool show_passes) {
  try {
    Device device = Device::parse(device_name);
    std::mt19937 gen(7);
    Graph g;
    Tensor x = g.placeholder("x", {"batch", 8});
    Tensor w1 = g.variable("w1", random_weights({8, 16}, gen));
    Tensor w2 = g.variable("w2", random_weights({16, 4}, gen));
    Tensor hidden = relu(matmul(x, w1) + g.constant(0.1));
    Tensor probs = softmax(matmul(hidden, w2), -1);

    CompileOptions options;
    options.device = device;
    options.outputs = {probs};
    options.keep_pass_dumps = show_passes;
    Executable exe = compile(g, options);

    std::vector<float> input(size_t(batch * 8));
    for (size_t i = 0; i < input.size(); ++i) input[i] = float(i * 7 % 11) / 11.f - 0.5f;
    auto out = exe.run({{"x", TensorData::from_floats(input, DType::f32, {batch, 8})}});
    auto values = out[0].to_floats();

    if (show_passes)
      for (const auto& d : exe.pass_dumps()) fmt::print("== after {}\n{}\n", d.pass, d.graph);
    fmt::print("{}", exe.dump());
    fmt::print("softmax(relu(x @ w1 + 0.1) @ w2) on {}, batch {}:\n", device.str(), batch);
    for (int64_t r = 0; r < batch; ++r) {
      fmt::print("  row {}:", r);
      for (int c = 0; c < 4; ++c) fmt::print(" {:.4f}", values[size_t(r * 4 + c)]);
      fmt::print("\n");
    }
    return 0;
  } catch (const Error& e) {
    fmt::print(stderr, "loom demo: {} error: {}\n", error_kind_name(e.kind()), e.what());
    return 1;
  }
}

void add_demo_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("demo", "Build, compile and run a small example graph");
  auto device = std::make_shared<std::string>("cpu");
  auto batch = std::make_shared<int64_t>(3);
  auto passes = std::make_shared<bool>(false);
  cmd->add_option("--device", *device, "cpu, cuda or cuda:N")->capture_default_str();
  cmd->add_option("--batch", *batch, "rows of input")
      ->check(positive_integer(1 << 20))
      ->capture_default_str();
  cmd->add_flag("--passes", *passes, "print the graph after each compiler pass");
  cmd->callback([=] {
    int rc = run_demo(*device, *batch, *passes);
    if (rc != 0) throw CLI::RuntimeError(rc);
  });
}

}  // namespace loom::tools
