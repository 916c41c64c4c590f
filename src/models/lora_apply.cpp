#include "models/lora_apply.h"

#include <algorithm>

#include "io/ggml_dequantize.h"
#include "io/gguf.h"

namespace loom::models {

std::map<std::string, std::shared_ptr<Executable>> compile_lora_callees(const LoraAdapter& adapter,
                                                                        double scale, DType dtype,
                                                                        int64_t batch,
                                                                        Device device) {
  const double s = adapter.config.scaling * scale;
  std::map<std::string, std::shared_ptr<Executable>> callees;
  for (const auto& [name, pair] : adapter.pairs) {
    // s folded into B once here, so the callee is two matmuls and nothing else.
    std::vector<float> b(pair.b.size());
    for (size_t i = 0; i < b.size(); ++i) b[i] = float(double(pair.b[i]) * s);
    Graph g;
    Tensor x = g.placeholder("x", {batch, Dim("seq"), pair.in}, dtype);
    Tensor a_var =
        g.variable("lora_a", TensorData::from_floats(pair.a, dtype, {pair.rank, pair.in}));
    Tensor b_var = g.variable("lora_b", TensorData::from_floats(b, dtype, {pair.out, pair.rank}));
    CompileOptions options;
    options.device = device;
    options.outputs = {matmul(matmul(x, a_var, false, true), b_var, false, true)};
    callees[lora_symbol(name)] = std::make_shared<Executable>(compile(g, options));
  }
  return callees;
}

LlamaWeight merge_lora(const io::GgufFile& file, const io::GgufTensorInfo& info,
                       const LoraPair& pair, double scaling, DType dtype) {
  if (info.shape != Extents{pair.out, pair.in})
    fail(ErrorKind::io, file.path() + ": " + info.name + " does not have the shape [" +
                            std::to_string(pair.out) + ", " + std::to_string(pair.in) +
                            "] the LoRA adapter is for");
  std::vector<float> base(size_t(info.numel));
  io::dequantize_ggml(info.type, file.tensor_bytes(info), info.numel, base.data());
  std::vector<double> row(size_t(pair.in));
  for (int64_t o = 0; o < pair.out; ++o) {
    std::fill(row.begin(), row.end(), 0.0);
    for (int64_t k = 0; k < pair.rank; ++k) {
      const double bk = double(pair.b[size_t(o * pair.rank + k)]) * scaling;
      const float* a = &pair.a[size_t(k * pair.in)];
      for (int64_t i = 0; i < pair.in; ++i) row[size_t(i)] += bk * double(a[i]);
    }
    float* w = &base[size_t(o * pair.in)];
    for (int64_t i = 0; i < pair.in; ++i) w[i] = float(double(w[i]) + row[size_t(i)]);
  }
  return {TensorData::from_floats(base, dtype, {pair.out, pair.in}), ""};
}

}  // namespace loom::models
