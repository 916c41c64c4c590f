// SafetensorsFile: reading back what the test writer wrote, the file made by the reference
// Python library (tests/data), and bad headers, lengths and ranges.
#include "io/safetensors.h"

#include <gtest/gtest.h>

#include "io/io_test_util.h"
#include "io/safetensors_writer.h"

namespace loom::test {
namespace {

using io::SafetensorsFile;
using Json = nlohmann::ordered_json;

#define EXPECT_HAS(haystack, needle) \
  EXPECT_NE(std::string(haystack).find(needle), std::string::npos) << (haystack)

std::vector<std::byte> counting(size_t n, int start) {
  std::vector<std::byte> out(n);
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<std::byte>((start + i * 7) & 0xff);
  return out;
}

std::vector<SafetensorsEntry> sample() {
  return {{"model.embed.weight", "F32", {3, 2}, counting(24, 1)},
          {"model.norm", "BF16", {5}, counting(10, 2)},
          {"mask", "BOOL", {2, 2}, counting(4, 3)},
          {"ids", "I64", {1}, counting(8, 4)},
          {"scalar", "F16", {}, counting(2, 5)},
          {"empty", "U8", {0, 4}, {}}};
}

TEST(Safetensors, ReadsTensorsAndMetadata) {
  ScratchDir dir;
  write_file(dir.file("m.safetensors"), make_safetensors(sample(), {{"format", "pt"}}));
  SafetensorsFile f = SafetensorsFile::open(dir.file("m.safetensors"));
  EXPECT_EQ(f.metadata().at("format"), "pt");
  ASSERT_EQ(f.tensors().size(), 6u);
  EXPECT_EQ(f.data_offset() % 8, 0u);
  auto want = sample();
  for (size_t i = 0; i < want.size(); ++i) {
    const auto& t = f.tensors()[i];
    EXPECT_EQ(t.name, want[i].name);  // header order
    EXPECT_STREQ(t.dtype->name, want[i].dtype.c_str());
    EXPECT_EQ(t.shape, want[i].shape);
    auto bytes = f.tensor_bytes(t);
    ASSERT_EQ(bytes.size(), want[i].data.size()) << t.name;
    EXPECT_TRUE(std::equal(bytes.begin(), bytes.end(), want[i].data.begin())) << t.name;
    EXPECT_EQ(f.find_tensor(t.name), &t);
  }
  EXPECT_EQ(f.find_tensor("model.embed.weight")->dtype->loom_dtype, DType::f32);
  EXPECT_EQ(f.find_tensor("model.norm")->dtype->loom_dtype, DType::bf16);
  EXPECT_EQ(f.find_tensor("mask")->dtype->loom_dtype, DType::boolean);
  EXPECT_EQ(f.find_tensor("scalar")->numel, 1);
  EXPECT_EQ(f.find_tensor("empty")->numel, 0);
  EXPECT_EQ(f.find_tensor("nope"), nullptr);
}

// Made by the reference implementation (the safetensors Python package) with
// tests/data/make_io_fixtures.py.
TEST(Safetensors, ReadsTheReferenceLibrarysFile) {
  SafetensorsFile f = SafetensorsFile::open(std::string(LOOM_TEST_DATA_DIR) + "/small.safetensors");
  EXPECT_EQ(f.metadata().at("made_by"), "tests/data/make_io_fixtures.py");
  const auto* a = f.find_tensor("a");
  ASSERT_NE(a, nullptr);
  EXPECT_STREQ(a->dtype->name, "F32");
  EXPECT_EQ(a->shape, (Extents{2, 3}));
  std::vector<float> values(6);
  auto bytes = f.tensor_bytes(*a);
  ASSERT_EQ(bytes.size(), 24u);
  std::memcpy(values.data(), bytes.data(), 24);
  EXPECT_EQ(values, (std::vector<float>{0, 1, 2, 3, 4, 5}));
  const auto* b = f.find_tensor("b");
  ASSERT_NE(b, nullptr);
  EXPECT_STREQ(b->dtype->name, "I32");
  EXPECT_EQ(b->shape, (Extents{4}));
  int32_t last;
  std::memcpy(&last, f.tensor_bytes(*b).data() + 12, 4);
  EXPECT_EQ(last, -4);
}

std::string open_error(const std::vector<std::byte>& bytes) {
  return io_error_of([&] { SafetensorsFile::from_bytes(bytes, "bad.safetensors"); });
}
template <class Edit>
std::string edited_error(Edit edit) {
  return open_error(make_safetensors(sample(), {}, edit));
}

TEST(Safetensors, RejectsBadLengths) {
  auto good = make_safetensors(sample());
  EXPECT_HAS(open_error({}), "8-byte header length");
  auto bad = good;
  uint64_t huge = ~uint64_t{0};
  std::memcpy(bad.data(), &huge, 8);
  EXPECT_HAS(open_error(bad), "header length 18446744073709551615 exceeds");
  for (size_t n = 0; n < good.size(); ++n) {
    std::vector<std::byte> cut(good.begin(), good.begin() + static_cast<ptrdiff_t>(n));
    EXPECT_HAS(open_error(cut), "bad.safetensors: ");
  }
}

TEST(Safetensors, RejectsBadHeaders) {
  EXPECT_HAS(edited_error([](Json& h) { h = Json::array(); }), "not a JSON object");
  EXPECT_HAS(edited_error([](Json& h) { h["mask"]["dtype"] = "F4"; }),
             "tensor 'mask' has dtype 'F4', which Loom does not read");
  EXPECT_HAS(edited_error([](Json& h) { h["mask"].erase("dtype"); }), "'mask' has no dtype");
  EXPECT_HAS(edited_error([](Json& h) { h["mask"]["shape"] = 4; }), "'mask' has no shape");
  EXPECT_HAS(edited_error([](Json& h) {
               h["mask"]["shape"] = {2, -2};
             }),
             "tensor 'mask' shape[1] is negative");
  EXPECT_HAS(edited_error([](Json& h) {
               h["mask"]["shape"] = {2, 2.0};
             }),
             "shape[1] is not a non-negative integer");
  EXPECT_HAS(edited_error([](Json& h) {
               h["mask"]["shape"] = {2, 3};
             }),
             "'mask' of dtype BOOL and 6 elements needs 6 bytes, but its data_offsets span 4");
  EXPECT_HAS(edited_error([](Json& h) {
               h["mask"]["data_offsets"] = {40, 36};
             }),
             "end before they begin");
  EXPECT_HAS(edited_error([](Json& h) {
               h["mask"]["data_offsets"] = {100, 104};
             }),
             "'mask' data_offsets [100, 104) reach past the data section of 48 bytes");
  EXPECT_HAS(edited_error([](Json& h) {
               h["mask"]["data_offsets"] = {0, 4};
             }),
             "tensors 'model.embed.weight' and 'mask' overlap");
  EXPECT_HAS(edited_error([](Json& h) { h["mask"]["data_offsets"] = {34}; }),
             "'mask' has no data_offsets pair");
  EXPECT_HAS(edited_error([](Json& h) {
               h["mask"]["shape"] = {uint64_t{1} << 40, uint64_t{1} << 40};
             }),
             "too many elements");
  EXPECT_HAS(edited_error([](Json& h) {
               h["__metadata__"] = {{"k", 1}};
             }),
             "__metadata__ value of 'k' is not a string");
  EXPECT_HAS(edited_error([](Json& h) {
               h["deep"] = {{"a", {{"b", {{"c", {1}}}}}}};
             }),
             "nests deeper");
  // Text edits: invalid JSON, a repeated name.
  auto text_edit = [](std::string from, std::string to) {
    auto bytes = make_safetensors(sample());
    std::string s(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    s.replace(s.find(from), from.size(), to);
    return open_error(
        std::vector<std::byte>(reinterpret_cast<const std::byte*>(s.data()),
                               reinterpret_cast<const std::byte*>(s.data()) + s.size()));
  };
  EXPECT_HAS(text_edit("\"dtype\":\"F32\"", "\"dtype\":\"F32\"}"), "not valid JSON");
  EXPECT_HAS(text_edit("\"model.norm\"", "\"mask\""), "header names 'mask' twice");
}

TEST(Safetensors, OpenNamesThePath) {
  ScratchDir dir;
  EXPECT_HAS(io_error_of([&] { SafetensorsFile::open(dir.file("absent.safetensors")); }),
             "cannot open '" + dir.file("absent.safetensors") + "'");
}

}  // namespace
}  // namespace loom::test
