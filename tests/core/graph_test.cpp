#include "test_util.h"

namespace loom {

TEST(Graph, InfersShapesAtBuildTime) {
  Graph g;
  Tensor x = g.placeholder("x", {"seq", 8});
  Tensor w = g.constant(TensorData::zeros(DType::f32, {8, 4}));
  Tensor y = matmul(x, w);
  EXPECT_EQ(to_string(y.shape()), "[seq, 4]");
  EXPECT_EQ(y.dtype(), DType::f32);
  EXPECT_EQ(y.op(), "matmul");
}

TEST(Graph, ShapeMismatchNamesOpAndShapes) {
  Graph g;
  Tensor a = g.placeholder("a", {2, 3});
  Tensor b = g.placeholder("b", {4, 3});
  std::string msg;
  EXPECT_EQ(testing::error_kind([&] { add(a, b); }, &msg), ErrorKind::shape);
  EXPECT_NE(msg.find("add"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[2, 3]"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[4, 3]"), std::string::npos) << msg;
}

TEST(Graph, DtypeMismatchIsDtypeError) {
  Graph g;
  Tensor a = g.placeholder("a", {2}, DType::f32);
  Tensor b = g.placeholder("b", {2}, DType::f16);
  EXPECT_EQ(testing::error_kind([&] { add(a, b); }), ErrorKind::dtype);
}

TEST(Graph, BuilderMisuseIsAnError) {
  Graph g, other;
  Tensor a = g.placeholder("a", {2});
  Tensor b = other.placeholder("b", {2});
  EXPECT_EQ(testing::error_kind([&] { add(a, b); }), ErrorKind::value);         // another graph
  EXPECT_EQ(testing::error_kind([&] { add(a, Tensor()); }), ErrorKind::value);  // undefined
  EXPECT_EQ(testing::error_kind([&] { g.placeholder("a", {3}); }), ErrorKind::value);  // duplicate
  EXPECT_EQ(testing::error_kind([&] { g.read(a); }), ErrorKind::value);  // not a variable
  EXPECT_EQ(testing::error_kind([&] { g.add_node("no_such_op", {a}); }), ErrorKind::unsupported);
  EXPECT_EQ(testing::error_kind([&] { g.add_node("add", {a}); }), ErrorKind::value);  // arity
  Tensor v = g.variable("v", TensorData::zeros(DType::f32, {2}));
  EXPECT_EQ(testing::error_kind([&] { g.assign(v, g.placeholder("c", {3})); }), ErrorKind::shape);
  EXPECT_EQ(testing::error_kind([&] { softmax(a, 1); }), ErrorKind::shape);  // axis out of range
}

TEST(Graph, DumpShowsNodesAttributesAndTypes) {
  Graph g;
  Tensor x = g.placeholder("x", {"n", 4});
  Tensor y = softmax(x * 2.0, -1);
  (void)y;
  std::string d = g.dump();
  EXPECT_NE(d.find("placeholder \"x\""), std::string::npos) << d;
  EXPECT_NE(d.find("f32[n, 4]"), std::string::npos) << d;
  EXPECT_NE(d.find("softmax"), std::string::npos) << d;
  EXPECT_NE(d.find("axis=-1"), std::string::npos) << d;
  EXPECT_NE(d.find("value=[2]"), std::string::npos) << d;
}

}  // namespace loom
