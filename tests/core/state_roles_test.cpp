// add_node cannot reach what only Graph's named builders and the passes may make: internal
// ops, nameless placeholders and variables, state ops on non-variables; constants are
// normalised where the op is defined.
#include "test_util.h"

namespace loom {

TEST(StateRoles, AssignToAConstantIsRefused) {
  Graph g;
  Tensor c = g.constant(TensorData::from_vector<float>({1, 2, 3}, {3}));
  Tensor x = g.placeholder("x", {3});
  std::string msg;
  EXPECT_EQ(testing::error_kind([&] { g.add_node("assign", {c, x}); }, &msg), ErrorKind::value);
  EXPECT_NE(msg.find("variable"), std::string::npos) << msg;
  // A placeholder or an intermediate is no target either.
  EXPECT_EQ(testing::error_kind([&] { g.add_node("assign", {x, x}); }), ErrorKind::value);
  EXPECT_EQ(testing::error_kind([&] { g.add_node("assign", {exp(x), x}); }), ErrorKind::value);
  EXPECT_EQ(testing::error_kind([&] { g.add_node("read", {c}); }), ErrorKind::value);
}

TEST(StateRoles, AssignThroughAddNodeToAVariableStillWorks) {
  Graph g;
  Tensor v = g.variable("v", TensorData::from_vector<float>({1, 2, 3}, {3}));
  Tensor x = g.placeholder("x", {3});
  g.add_node("assign", {v, x});
  CompileOptions options;
  Executable exe = compile(g, options);
  exe.run({{"x", TensorData::from_vector<float>({7, 8, 9}, {3})}});
  EXPECT_EQ(exe.variables().get("v").to_vector<float>(), (std::vector<float>{7, 8, 9}));
}

TEST(StateRoles, InternalOpsAreUnreachable) {
  Graph g;
  Tensor v = g.variable("v", TensorData::zeros(DType::f32, {4, 2}));
  Tensor u = g.placeholder("u", {1, 2});
  Tensor starts = g.constant(TensorData::from_vector<int64_t>({1, 0}, {2}));
  std::string msg;
  EXPECT_EQ(testing::error_kind(
                [&] {
                  g.add_node("slice_update_inplace", {g.read(v), u, starts});
                },
                &msg),
            ErrorKind::value);
  EXPECT_NE(msg.find("internal"), std::string::npos) << msg;
}

TEST(StateRoles, NamelessPlaceholdersAndVariablesAreRefused) {
  Graph g;
  EXPECT_EQ(testing::error_kind([&] {
              g.add_node("variable", {}, {{"initial", TensorData::zeros(DType::f32, {2})}});
            }),
            ErrorKind::value);
  EXPECT_EQ(testing::error_kind([&] {
              g.add_node("placeholder", {}, {{"shape", Shape{2}}, {"dtype", DType::f32}});
            }),
            ErrorKind::value);
}

TEST(StateRoles, ConstantFromAStridedHostValueFoldsTheRightNumbers) {
  // Every other element of [0, 1, ..., 7]: a strided view the graph must gather, whether the
  // constant comes from Graph::constant or from add_node.
  auto base = TensorData::from_vector<float>({0, 1, 2, 3, 4, 5, 6, 7}, {8});
  TensorData strided = base.view({4}, {2}, 0);
  for (bool through_add_node : {false, true}) {
    Graph g;
    Tensor c =
        through_add_node ? g.add_node1("constant", {}, {{"value", strided}}) : g.constant(strided);
    Tensor y = exp(c);  // folded at compile time
    CompileOptions options;
    options.outputs = {y};
    Executable exe = compile(g, options);
    auto out = exe.run({})[0].to_vector<float>();
    ASSERT_EQ(out.size(), 4u);
    for (int i = 0; i < 4; ++i) EXPECT_FLOAT_EQ(out[size_t(i)], std::exp(float(2 * i))) << i;
    // Changing the caller's data afterwards changes nothing.
    static_cast<float*>(base.data())[0] = 100.f;
    auto again = exe.run({})[0].to_vector<float>();
    EXPECT_FLOAT_EQ(again[0], 1.f);
    static_cast<float*>(base.data())[0] = 0.f;
  }
}

}  // namespace loom
