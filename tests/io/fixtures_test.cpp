// The readers on files made by the reference Python libraries (tests/data/make_io_fixtures.py):
// gguf-py's GGUFWriter for small.gguf (the safetensors one is in safetensors_test.cpp).
#include <gtest/gtest.h>

#include <cstring>

#include "io/gguf.h"
#include "io/io_test_util.h"

namespace loom::test {
namespace {

TEST(GgufFixture, ReadsWhatGgufPyWrote) {
  io::GgufFile f = io::GgufFile::open(std::string(LOOM_TEST_DATA_DIR) + "/small.gguf");
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.get_string("general.architecture"), "llama");
  EXPECT_EQ(f.type("test.u32"), io::GgufValueType::uint32);
  EXPECT_EQ(f.get_int("test.u32"), 4000000000LL);
  EXPECT_EQ(f.get_int("test.i32"), -5);
  EXPECT_EQ(f.get_float("test.f32"), 0.25);
  EXPECT_EQ(f.get_float("test.f64"), -1.5);
  EXPECT_TRUE(f.get_bool("test.bool"));
  EXPECT_EQ(f.get_string("test.string"), "h\xc3\xa9llo");
  EXPECT_EQ(f.get_string_array("test.strings"), (std::vector<std::string>{"a", "", "ccc"}));
  EXPECT_EQ(f.get_int_array("test.ints"), (std::vector<int64_t>{1, 2, 3}));
  io::GgufValue nested = f.value("test.nested");
  ASSERT_EQ(nested.elements.size(), 2u);
  ASSERT_EQ(nested.elements[0].elements.size(), 2u);
  EXPECT_EQ(nested.elements[0].elements[1].i, 2);
  EXPECT_EQ(nested.elements[1].elements[0].i, 3);

  // Tensor table as gguf-py reports it (shape in ne order, absolute data offsets, bytes).
  struct Want {
    const char* name;
    io::GgmlType type;
    std::vector<int64_t> ne;
    uint64_t file_offset, bytes;
  };
  const Want want[] = {{"f32", io::GgmlType::F32, {3, 2}, 576, 24},
                       {"f16", io::GgmlType::F16, {4}, 608, 8},
                       {"q8_0", io::GgmlType::Q8_0, {32, 2}, 640, 68},
                       {"q4_k", io::GgmlType::Q4_K, {256, 1}, 736, 144}};
  ASSERT_EQ(f.tensors().size(), 4u);
  for (size_t i = 0; i < 4; ++i) {
    const auto& t = f.tensors()[i];
    EXPECT_EQ(t.name, want[i].name);
    EXPECT_EQ(t.type, want[i].type);
    EXPECT_EQ(t.ne, want[i].ne);
    EXPECT_EQ(t.file_offset, want[i].file_offset);
    EXPECT_EQ(t.byte_size, want[i].bytes);
  }
  std::vector<float> values(6);
  std::memcpy(values.data(), f.tensor_bytes(f.tensors()[0]).data(), 24);
  EXPECT_EQ(values, (std::vector<float>{0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(f.tensors()[0].shape, (Extents{2, 3}));
  auto q4k = f.tensor_bytes(f.tensors()[3]);
  EXPECT_EQ(q4k[143], std::byte{143});
}

}  // namespace
}  // namespace loom::test
