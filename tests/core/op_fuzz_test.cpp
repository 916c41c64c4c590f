// Random graphs of random ops with random attributes: building, compiling and running
// them must either work or throw loom::Error of a kind that names the user's mistake — never
// ErrorKind::internal, crash, hang or throw anything else. (Multi-node graphs, and their
// results with and without the passes: graph_fuzz_test.cpp.)
#include <random>

#include "core/fuzz_attributes.h"
#include "ir/op_registry.h"
#include "test_util.h"

namespace loom {

namespace {

Extents random_extents(std::mt19937& gen) {
  Extents e(gen() % 4);
  for (auto& x : e) x = int64_t(gen() % 4);
  return e;
}

}  // namespace

TEST(OpFuzz, RandomNodesFailCleanly) {
  std::mt19937 gen(12345);
  std::vector<std::string> ops;
  for (const auto& name : ir::OpRegistry::instance().names())
    if (!ir::OpRegistry::instance().at(name).is_source) ops.push_back(name);
  const DType dtypes[] = {DType::f32, DType::f16,     DType::bf16, DType::i32,
                          DType::i64, DType::boolean, DType::u8};
  int built = 0, ran = 0, internal_errors = 0;
  for (int iter = 0; iter < 30000; ++iter) {
    Graph g;
    std::vector<Tensor> inputs;
    Feeds feeds;
    for (size_t i = gen() % 4; i > 0; --i) {
      Extents shape = random_extents(gen);
      DType dtype = dtypes[gen() % std::size(dtypes)];
      std::string name = "in" + std::to_string(i);
      inputs.push_back(g.placeholder(name, to_shape(shape), dtype));
      feeds[name] = testing::random_tensor(dtype, shape, -3, 3);
    }
    const std::string& op = ops[gen() % ops.size()];
    Attributes attrs = testing::random_attributes(ir::OpRegistry::instance().at(op), gen);
    try {
      auto outs = g.add_node(op, inputs, attrs);
      ++built;
      if (outs.empty()) continue;
      CompileOptions options;
      options.outputs = outs;
      Executable exe = compile(g, options);
      exe.run(feeds);
      ++ran;
    } catch (const Error& e) {
      // A clean refusal is what bad input should get; an internal error is a bug of ours.
      if (e.kind() == ErrorKind::internal && ++internal_errors <= 20)
        ADD_FAILURE() << "internal error from " << op << " {" << attrs.str() << "} on "
                      << inputs.size() << " inputs: " << e.what();
    }
  }
  EXPECT_EQ(internal_errors, 0);
  // The fuzzer must reach the kernels, not only the verifiers.
  EXPECT_GT(built, 1000);
  EXPECT_GT(ran, 500);
}

}  // namespace loom
