// Walks every registered op: each declares a doc and well-formed specs; each that computes
// has a kernel on every backend that is built (CPU always, CUDA when built) for every dtype
// its schema allows, or a decomposition; the CPU runs it; decompositions agree with the
// fused kernels.
#include <set>

#include "backends/backend.h"
#include "core/op_sample.h"

namespace loom {
namespace {

const ir::OpRegistry& registry() { return ir::OpRegistry::instance(); }

// Ops computed by a kernel (not sources, not views of their input).
bool needs_kernel(const ir::OpDef& def) { return !def.is_source && def.aliases_input < 0; }

std::vector<DeviceKind> built_backends() {
  std::vector<DeviceKind> kinds{DeviceKind::cpu};
#ifdef LOOM_WITH_CUDA
  kinds.push_back(DeviceKind::cuda);
#endif
  return kinds;
}

TEST(OpRegistry, EveryOpIsDeclared) {
  for (const auto& name : op_names()) {
    const OpSchema& s = op_schema(name);
    EXPECT_FALSE(s.doc.empty()) << name;
    EXPECT_GE(s.version, 1) << name;
    std::set<std::string> seen;
    for (const auto& in : s.inputs) {
      EXPECT_TRUE(seen.insert(in.name).second) << name << ": input " << in.name << " twice";
      EXPECT_FALSE(in.doc.empty()) << name << "." << in.name;
    }
    for (const auto& a : s.attributes) {
      EXPECT_TRUE(seen.insert(a.name).second) << name << ": " << a.name << " twice";
      EXPECT_FALSE(a.doc.empty()) << name << "." << a.name;
      EXPECT_FALSE(a.required && a.default_value) << name << "." << a.name;
    }
    EXPECT_EQ(s.outputs.empty(), s.role == "assign") << name;
  }
}

TEST(OpRegistry, EveryComputedOpHasAKernelOnEveryBackend) {
  for (DeviceKind kind : built_backends()) {
    const Backend& table = kernel_table(kind);
    for (const auto& name : registry().names()) {
      const ir::OpDef& def = registry().at(name);
      if (!needs_kernel(def)) continue;
      EXPECT_TRUE(table.has_kernel(name) || def.decompose)
          << name << " has no kernel on " << (kind == DeviceKind::cpu ? "cpu" : "cuda");
    }
  }
}

// For every dtype the schema allows, a node builds (inference agrees with the schema), every
// built backend has a kernel that supports it, and the CPU (and a GPU when present) runs it.
TEST(OpRegistry, EveryAllowedDTypeHasAKernel) {
  int nodes = 0;
  for (const auto& name : registry().names()) {
    const ir::OpDef& def = registry().at(name);
    if (!def.is(ir::OpRole::compute) || def.internal || !needs_kernel(def)) continue;
    // A call runs the executable bound to its symbol: tests/core/call_test.cpp.
    if (name == "call") continue;
    std::vector<std::string> refused;
    std::string error;
    for (DType dtype : testing::value_dtypes(def)) {
      auto sample = testing::sample_op(def, dtype, false, &error);
      if (!sample) {
        refused.push_back(std::string(dtype_name(dtype)) + ": " + error);
        continue;
      }
      ++nodes;
      const ir::Node& node = *sample->outputs.at(0).node();
      for (DeviceKind kind : built_backends()) {
        std::vector<TensorView> views;
        for (const auto& in : node.inputs) {
          const ir::TensorType& t = in.node->type(in.output);
          views.push_back({nullptr, t.dtype, static_extents(t.shape), {}});
        }
        EXPECT_TRUE(kernel_table(kind).find_kernel(node, views) || def.decompose)
            << name << " " << dtype_name(dtype) << ": no kernel supports it on "
            << (kind == DeviceKind::cpu ? "cpu" : "cuda");
      }
      std::vector<Device> devices{Device::cpu()};
      if (cuda_available()) devices.push_back(Device::cuda());
      for (Device device : devices) {
        try {
          testing::run_once(sample->graph, sample->outputs, sample->feeds, device);
        } catch (const Error& e) {
          ADD_FAILURE() << name << " " << dtype_name(dtype) << " fails on " << device.str() << ": "
                        << e.what();
        }
      }
    }
    EXPECT_TRUE(refused.empty()) << name << ": the schema allows dtypes that inference refuses:\n"
                                 << ::testing::PrintToString(refused);
  }
  EXPECT_GT(nodes, 150);
}

// A decomposition computes what the fused kernel does, to f32 rounding.
TEST(OpRegistry, DecompositionsAgreeWithKernels) {
  int checked = 0;
  for (const auto& name : registry().names()) {
    const ir::OpDef& def = registry().at(name);
    if (!def.decompose) continue;
    for (bool with_optional : {false, true}) {
      auto s = testing::sample_op(def, DType::f32, with_optional);
      ASSERT_TRUE(s) << name;
      const ir::Node& node = *s->outputs.at(0).node();
      std::vector<Tensor> parts = def.decompose(s->graph, s->declared, node.attrs);
      ASSERT_EQ(parts.size(), s->outputs.size()) << name;
      std::vector<Tensor> both = s->outputs;
      both.insert(both.end(), parts.begin(), parts.end());
      auto results = testing::run_once(s->graph, both, s->feeds);
      for (size_t i = 0; i < s->outputs.size(); ++i) {
        auto fused = testing::to_doubles(results[i]);
        auto built = testing::to_doubles(results[i + s->outputs.size()]);
        ASSERT_EQ(fused.size(), built.size()) << name;
        for (size_t j = 0; j < fused.size(); ++j)
          EXPECT_NEAR(built[j], fused[j], 1e-5 + 1e-5 * std::abs(fused[j]))
              << name << (with_optional ? " with optional inputs" : "") << " element " << j;
      }
      ++checked;
    }
  }
  // softmax, log_softmax, layer_norm, rms_norm, sigmoid, silu, gelu_tanh, rope.
  EXPECT_GE(checked, 2 * 7);
}

}  // namespace
}  // namespace loom
