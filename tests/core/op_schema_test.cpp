// Op schemas: Graph::add_node checks attributes against them (names, types, ranges,
// contradictions), fills defaults, takes optional inputs by name, and the op functions'
// defaults are the schema's.
#include "ir/op_registry.h"
#include "test_util.h"

namespace loom {
namespace {

// Runs `fn`, which must throw loom::Error of `kind` whose message holds every piece.
template <class Fn>
void expect_error(Fn&& fn, ErrorKind kind, std::initializer_list<std::string> pieces) {
  try {
    fn();
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), kind) << e.what();
    for (const auto& piece : pieces)
      EXPECT_NE(std::string(e.what()).find(piece), std::string::npos)
          << "'" << piece << "' not in: " << e.what();
  }
}

TEST(OpSchema, UnknownAttributeListsTheOpsAttributes) {
  Graph g;
  Tensor x = g.placeholder("x", {3, 4});
  expect_error(
      [&] {
        g.add_node("argmax", {x}, {{"axsi", int64_t(0)}});
      },
      ErrorKind::value,
      {"argmax", "unknown attribute 'axsi'", "axis (int, default 0)", "keepdims"});
  expect_error(
      [&] {
        g.add_node("relu", {x}, {{"axis", int64_t(0)}});
      },
      ErrorKind::value, {"relu", "takes no attributes"});
}

TEST(OpSchema, WrongTypesAreValueErrors) {
  Graph g;
  Tensor x = g.placeholder("x", {3, 4});
  expect_error(
      [&] {
        g.add_node("softmax", {x}, {{"axis", 1.5}});
      },
      ErrorKind::value, {"softmax", "'axis' must be an int, got float 1.5"});
  expect_error(
      [&] {
        g.add_node("sum", {x}, {{"keepdims", int64_t(1)}});
      },
      ErrorKind::value, {"sum", "'keepdims'", "bool"});
  expect_error(
      [&] {
        g.add_node("cast", {x}, {{"dtype", std::string("f31")}});
      },
      ErrorKind::dtype, {"cast", "unknown dtype 'f31'"});
  expect_error([&] { g.add_node("cast", {x}, {}); }, ErrorKind::value,
               {"cast", "attribute 'dtype' is required"});
}

TEST(OpSchema, RangesAndContradictions) {
  Graph g;
  Tensor x = g.placeholder("x", {4, 6});
  expect_error([&] { layer_norm(x, std::nullopt, std::nullopt, -1.0); }, ErrorKind::value,
               {"layer_norm", "'eps' = -1 is out of range (>= 0)"});
  expect_error(
      [&] {
        g.add_node(
            "split", {x},
            {{"sizes", std::vector<int64_t>{2, 2}}, {"parts", int64_t(2)}, {"axis", int64_t(0)}});
      },
      ErrorKind::value, {"split", "not both"});
  expect_error(
      [&] {
        g.add_node("split", {x}, {{"parts", int64_t(0)}, {"axis", int64_t(0)}});
      },
      ErrorKind::value, {"split", "'parts' = 0 is out of range"});
  expect_error(
      [&] {
        g.add_node("layer_norm", {x}, {{"has_weight", true}});
      },
      ErrorKind::value, {"layer_norm", "has_weight is true, but no weight input is given"});
}

TEST(OpSchema, CoercionsAndDefaults) {
  Graph g;
  Tensor x = g.placeholder("x", {4, 6});
  // int -> float, dtype name -> DType, int list -> shape.
  Tensor y = g.add_node1("rms_norm", {x}, {{"eps", int64_t(1)}});
  EXPECT_EQ(y.node()->attrs.get<double>("eps"), 1.0);
  Tensor c = g.add_node1("cast", {x}, {{"dtype", std::string("f16")}});
  EXPECT_EQ(c.dtype(), DType::f16);
  Tensor r = g.add_node1("reshape", {x}, {{"shape", std::vector<int64_t>{6, 4}}});
  EXPECT_EQ(r.shape(), (Shape{6, 4}));
  // Defaults are filled from the schema, so kernels read complete attributes.
  Tensor a = g.add_node1("argmax", {x});
  EXPECT_EQ(a.node()->attrs.get<int64_t>("axis"), 0);
  EXPECT_EQ(a.node()->attrs.get<bool>("keepdims"), false);
  EXPECT_EQ(a.shape(), (Shape{6}));
}

TEST(OpSchema, ArgmaxWithDefaultAxisRuns) {
  std::vector<Device> devices{Device::cpu()};
  if (cuda_available()) devices.push_back(Device::cuda());
  for (Device device : devices) {
    Graph g;
    Tensor x = g.placeholder("x", {3, 2});
    Tensor y = g.add_node1("argmax", {x});
    CompileOptions options;
    options.device = device;
    options.outputs = {y};
    Executable exe = compile(g, options);
    TensorData in = TensorData::from_floats({1, 9, 7, 2, 3, 4}, DType::f32, {3, 2});
    TensorData out = exe.run({{"x", in}}).at(0).to_host();
    ASSERT_EQ(out.shape(), (Extents{2})) << device.str();
    // column 0: 1, 7, 3; column 1: 9, 2, 4
    EXPECT_EQ(testing::to_doubles(out), (std::vector<double>{1, 0})) << device.str();
  }
}

TEST(OpSchema, OptionalInputsByName) {
  Graph g;
  Tensor x = g.placeholder("x", {2, 4});
  Tensor b = g.placeholder("b", {4});
  // A bias without a weight: by name, or with an undefined Tensor in the weight's place.
  Tensor by_name = g.add_node("layer_norm", {{"x", x}, {"bias", b}}).at(0);
  Tensor by_hole = g.add_node("layer_norm", {x, Tensor(), b}).at(0);
  for (Tensor t : {by_name, by_hole}) {
    EXPECT_EQ(t.node()->find_input("bias"), 1);
    EXPECT_EQ(t.node()->find_input("weight"), -1);
    EXPECT_EQ(t.node()->attrs.get<bool>("has_bias"), true);
    EXPECT_EQ(t.node()->attrs.get<bool>("has_weight"), false);
  }
  TensorData xd = testing::random_tensor(DType::f32, {2, 4});
  TensorData bd = testing::random_tensor(DType::f32, {4});
  auto got = testing::run_once(g, {by_name, by_hole}, {{"x", xd}, {"b", bd}});
  // Row-wise (x - mean) / sqrt(var + eps) + b.
  auto xv = testing::to_doubles(xd), bv = testing::to_doubles(bd);
  for (int r = 0; r < 2; ++r) {
    double mean = 0, var = 0;
    for (int i = 0; i < 4; ++i) mean += xv[size_t(r * 4 + i)] / 4;
    for (int i = 0; i < 4; ++i) var += std::pow(xv[size_t(r * 4 + i)] - mean, 2) / 4;
    for (int i = 0; i < 4; ++i) {
      double want = (xv[size_t(r * 4 + i)] - mean) / std::sqrt(var + op_defaults::layer_norm_eps) +
                    bv[size_t(i)];
      for (const auto& t : got) EXPECT_NEAR(testing::to_doubles(t)[size_t(r * 4 + i)], want, 1e-5);
    }
  }
  expect_error(
      [&] {
        g.add_node("layer_norm", {{"x", x}, {"scale", b}});
      },
      ErrorKind::value, {"layer_norm", "no input 'scale'", "x, weight?, bias?"});
  expect_error(
      [&] {
        g.add_node("layer_norm", {{"bias", b}});
      },
      ErrorKind::value, {"layer_norm", "'x' is missing"});
  expect_error(
      [&] {
        g.add_node("add", {x, Tensor()});
      },
      ErrorKind::value, {"add", "('b') is undefined"});
}

TEST(OpSchema, RecordAttributes) {
  auto scheme = std::make_shared<RecordSpec>(RecordSpec{
      .name = "quant_scheme",
      .doc = "how weights are quantized",
      .fields = {{.name = "bits", .type = AttrType::integer, .required = true, .min = 2, .max = 8},
                 {.name = "block", .type = AttrType::integer, .default_value = int64_t(32)}}});
  std::vector<AttrSpec> specs{
      {.name = "scheme", .type = AttrType::record, .required = true, .record = scheme},
      {.name = "scales", .type = AttrType::float_list, .default_value = std::vector<double>{}}};
  Attributes attrs{{"scheme", Record("", Attributes{{"bits", int64_t(4)}})},
                   {"scales", std::vector<int64_t>{1, 2}}};
  ir::check_attributes("op", specs, attrs);
  const Record& r = attrs.get<Record>("scheme");
  EXPECT_EQ(r.type(), "quant_scheme");
  EXPECT_EQ(r.fields().get<int64_t>("block"), 32);
  EXPECT_EQ(attrs.get<std::vector<double>>("scales"), (std::vector<double>{1.0, 2.0}));
  Attributes bad{{"scheme", Record("", Attributes{{"bits", int64_t(9)}})}};
  expect_error([&] { ir::check_attributes("op", specs, bad); }, ErrorKind::value,
               {"'bits' = 9 is out of range (2 to 8)"});
  Attributes missing{{"scheme", Record("", Attributes{})}};
  expect_error([&] { ir::check_attributes("op", specs, missing); }, ErrorKind::value,
               {"'bits' is required"});
  Attributes wrong{{"scheme", int64_t(4)}};
  expect_error([&] { ir::check_attributes("op", specs, wrong); }, ErrorKind::value,
               {"'scheme' must be a record quant_scheme"});
}

// The op functions' default arguments (ops.h) are the schemas' defaults.
TEST(OpSchema, OpFunctionDefaultsAgreeWithSchemas) {
  Graph g;
  Tensor x = g.placeholder("x", {2, 4, 8});
  Tensor offset = g.placeholder("offset", {}, DType::i64);
  Tensor idx = g.placeholder("idx", {3}, DType::i64);
  Tensor square = g.placeholder("square", {4, 4});
  std::vector<Tensor> made{softmax(x), log_softmax(x),        layer_norm(x),   rms_norm(x),
                           argmax(x),  gather(x, idx),        rope(x, offset), arange(g, 0, 4),
                           sum(x),     matmul(square, square)};
  int checked = 0;
  for (const Tensor& t : made) {
    const OpSchema& schema = op_schema(t.op());
    for (const AttrSpec& spec : schema.attributes) {
      if (!spec.default_value || spec.name == "start" || spec.name == "stop") continue;
      ASSERT_TRUE(t.node()->attrs.has(spec.name)) << t.op() << "." << spec.name;
      EXPECT_EQ(attr_to_string(t.node()->attrs.items().at(spec.name)),
                attr_to_string(*spec.default_value))
          << t.op() << "." << spec.name;
      ++checked;
    }
  }
  EXPECT_GE(checked, 15);
  EXPECT_EQ(op_schema("rms_norm").attribute("eps")->str(),
            "eps: float = 1e-06 [>= 0]  added to the variance");
}

TEST(OpSchema, PublicLookups) {
  auto names = op_names();
  EXPECT_NE(std::find(names.begin(), names.end(), "rope"), names.end());
  const OpSchema s = op_schema("layer_norm");
  ASSERT_EQ(s.inputs.size(), 3u);
  EXPECT_TRUE(s.input("weight")->optional);
  EXPECT_TRUE(s.has_decomposition);
  EXPECT_EQ(s.role, "compute");
  EXPECT_NE(s.str().find("layer_norm(x, weight?, bias?)"), std::string::npos) << s.str();
  expect_error([] { op_schema("no_such_op"); }, ErrorKind::unsupported, {"no_such_op"});
}

}  // namespace
}  // namespace loom
