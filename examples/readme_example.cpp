// The API example of README.md: build once, compile once, run many times.
#include <cstdio>

#include "loom/loom.h"

int main() {
  loom::Graph g;
  auto x = g.placeholder("x", {"batch", 4});  // "batch" is bound by each run's feed
  auto w = g.variable("w", loom::TensorData::from_vector<float>(
                               {1, 0, 0, 1, 0, 1, 1, 0, 0.5f, 0.5f, 0.5f, 0.5f}, {4, 3}));
  auto y = loom::softmax(loom::relu(loom::matmul(x, w)), -1);

  loom::CompileOptions options;
  options.outputs = {y};
  options.device = loom::cuda_available() ? loom::Device::cuda() : loom::Device::cpu();
  loom::Executable exe = loom::compile(g, options);

  auto feed = loom::TensorData::from_vector<float>({1, 2, 3, 4, -1, -2, -3, -4}, {2, 4});
  auto out = exe.run({{"x", feed}})[0].to_vector<float>();
  std::printf("y[0] = %.4f %.4f %.4f\n", out[0], out[1], out[2]);
  std::printf("y[1] = %.4f %.4f %.4f\n", out[3], out[4], out[5]);
}
