// Device names, stores on devices that are not there, and conflicts in a shared store.
#include <functional>

#include "test_util.h"

namespace loom {

static ErrorKind error_kind_of(const std::function<void()>& fn, std::string* message) {
  try {
    fn();
  } catch (const Error& e) {
    *message = e.what();
    return e.kind();
  }
  ADD_FAILURE() << "expected loom::Error";
  return ErrorKind::internal;
}

TEST(DeviceParse, NamesAndRejections) {
  EXPECT_EQ(Device::parse("cpu"), Device::cpu());
  EXPECT_EQ(Device::parse("cuda"), Device::cuda(0));
  EXPECT_EQ(Device::parse("cuda:3"), Device::cuda(3));
  EXPECT_EQ(Device::cuda(3).str(), "cuda:3");
  for (const char* bad : {"gpu", "GPU", "cuda:", "cuda:x", "cuda:-1", "cuda:12345", "", "tpu"}) {
    std::string message;
    EXPECT_EQ(error_kind_of([&] { Device::parse(bad); }, &message), ErrorKind::value) << bad;
    EXPECT_NE(message.find("valid names: cpu, cuda, cuda:N"), std::string::npos) << message;
  }
}

TEST(VariableStoreDevice, CudaStoreAndCompileFailWithoutThatGpu) {
  // Index 7 is absent on a machine with fewer GPUs, and every index is absent without CUDA.
  // (Skipped on a machine with 8 or more GPUs: there cuda:7 exists.)
  if (cuda_available()) {
    try {
      VariableStore probe(Device::cuda(7));
      GTEST_SKIP() << "cuda:7 exists here";
    } catch (const Error&) {
    }
  }
  std::string message;
  EXPECT_EQ(error_kind_of([] { VariableStore store(Device::cuda(7)); }, &message),
            ErrorKind::device);
  EXPECT_NE(message.find("cuda:7"), std::string::npos) << message;
  if (!cuda_available()) {
    EXPECT_EQ(error_kind_of([] { VariableStore store(Device::cuda(0)); }, &message),
              ErrorKind::device);
  }

  Graph g;
  Tensor x = g.placeholder("x", {2});
  Tensor w = g.variable("w", TensorData::from_vector<float>({1, 2}, {2}));
  CompileOptions options;
  options.device = Device::cuda(7);
  options.outputs = {x + w};
  EXPECT_EQ(error_kind_of([&] { compile(g, options); }, &message), ErrorKind::device);
  // The CUDA backend names an absent GPU "CUDA device 7"; a build without CUDA "cuda:7".
  EXPECT_TRUE(message.find("cuda:7") != std::string::npos ||
              message.find("device 7 ") != std::string::npos)
      << message;
}

TEST(VariableStoreConflicts, DtypeConflictIsADtypeErrorAndShapeConflictAShapeError) {
  auto store = std::make_shared<VariableStore>();
  store->declare("w", TensorData::zeros(DType::f32, {2, 3}));

  std::string message;
  EXPECT_EQ(error_kind_of(
                [&] {
                  store->declare("w", TensorData::zeros(DType::f16, {2, 3}));
                },
                &message),
            ErrorKind::dtype);
  EXPECT_NE(message.find("'w'"), std::string::npos) << message;
  EXPECT_NE(message.find("f32"), std::string::npos) << message;
  EXPECT_NE(message.find("f16"), std::string::npos) << message;

  EXPECT_EQ(error_kind_of(
                [&] {
                  store->declare("w", TensorData::zeros(DType::f32, {3, 2}));
                },
                &message),
            ErrorKind::shape);
  EXPECT_NE(message.find("'w'"), std::string::npos) << message;
  EXPECT_NE(message.find("[2, 3]"), std::string::npos) << message;
  EXPECT_NE(message.find("[3, 2]"), std::string::npos) << message;

  // Through compile: a second graph with the same variable name in another dtype.
  Graph g;
  Tensor v = g.variable("w", TensorData::zeros(DType::i32, {2, 3}));
  CompileOptions options;
  options.variables = store;
  options.outputs = {v};
  EXPECT_EQ(error_kind_of([&] { compile(g, options); }, &message), ErrorKind::dtype);
  EXPECT_NE(message.find("i32"), std::string::npos) << message;

  // The same declaration again is not a conflict.
  store->declare("w", TensorData::zeros(DType::f32, {2, 3}));
  EXPECT_EQ(store->names().size(), 1u);
}

}  // namespace loom
