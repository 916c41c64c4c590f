// GgufFile: reading back what GgufWriter wrote (every value type, nested arrays, every tensor
// type), the getters' conversions and errors, hostile files, and the bundled SmolLM2 model.
#include "io/gguf.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "io/gguf_writer.h"
#include "io/io_test_util.h"

namespace loom::test {
namespace {

using io::GgufFile;
using io::GgufValueType;
using W = GgufWriter;

std::vector<std::byte> pattern_bytes(size_t n, unsigned seed) {
  std::vector<std::byte> out(n);
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<std::byte>((i * 131 + seed * 17 + 7) & 0xff);
  return out;
}

GgufWriter every_value_type() {
  GgufWriter w;
  w.add("general.architecture", W::string("llama"));
  w.add("u8", W::u8(250));
  w.add("i8", W::i8(-7));
  w.add("u16", W::u16(65000));
  w.add("i16", W::i16(-30000));
  w.add("u32", W::u32(4000000000u));
  w.add("i32", W::i32(-2000000000));
  w.add("u64", W::u64(std::numeric_limits<uint64_t>::max()));
  w.add("i64", W::i64(std::numeric_limits<int64_t>::min()));
  w.add("f32", W::f32(1e-5f));
  w.add("f64", W::f64(-2.5e300));
  w.add("yes", W::boolean(true));
  w.add("no", W::boolean(false));
  w.add("empty", W::string(""));
  w.add("tokens", W::strings({"<s>", "", "hello world", "\xc4\xa0t"}));
  w.add("scores", W::array(W::F32, {W::f32(0.5f), W::f32(-1.25f)}));
  w.add("ids", W::array(W::I32, {W::i32(3), W::i32(-1), W::i32(7)}));
  w.add("u8s", W::array(W::U8, {W::u8(1), W::u8(255)}));
  w.add("big", W::array(W::U64, {W::u64(1), W::u64(std::numeric_limits<uint64_t>::max())}));
  w.add("nested", W::array(W::ARRAY, {W::array(W::U32, {W::u32(1), W::u32(2)}),
                                      W::array(W::U32, {}), W::array(W::U32, {W::u32(3)})}));
  w.add("nested_strings", W::array(W::ARRAY, {W::strings({"a", "bc"})}));
  w.add("empty_array", W::array(W::STRING, {}));
  return w;
}

TEST(Gguf, ReadsEveryValueType) {
  auto w = every_value_type();
  GgufFile f = GgufFile::from_bytes(w.bytes(), "values.gguf");
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.keys().size(), 22u);
  EXPECT_EQ(f.keys().front(), "general.architecture");
  EXPECT_EQ(f.get_string("general.architecture"), "llama");
  EXPECT_EQ(f.get_int("u8"), 250);
  EXPECT_EQ(f.get_int("i8"), -7);
  EXPECT_EQ(f.get_int("u16"), 65000);
  EXPECT_EQ(f.get_int("i16"), -30000);
  EXPECT_EQ(f.get_int("u32"), 4000000000LL);
  EXPECT_EQ(f.get_int("i32"), -2000000000);
  EXPECT_EQ(f.get_int("i64"), std::numeric_limits<int64_t>::min());
  EXPECT_EQ(f.get_float("f32"), static_cast<double>(1e-5f));
  EXPECT_EQ(f.get_float("f64"), -2.5e300);
  EXPECT_EQ(f.get_float("i8"), -7.0);  // integers convert to float
  EXPECT_TRUE(f.get_bool("yes"));
  EXPECT_FALSE(f.get_bool("no"));
  EXPECT_EQ(f.get_string("empty"), "");
  EXPECT_EQ(f.get_string_array("tokens"),
            (std::vector<std::string>{"<s>", "", "hello world", "\xc4\xa0t"}));
  EXPECT_EQ(f.get_float_array("scores"), (std::vector<double>{0.5, -1.25}));
  EXPECT_EQ(f.get_int_array("ids"), (std::vector<int64_t>{3, -1, 7}));
  EXPECT_EQ(f.get_int_array("u8s"), (std::vector<int64_t>{1, 255}));
  EXPECT_EQ(f.get_float_array("ids"), (std::vector<double>{3, -1, 7}));
  EXPECT_TRUE(f.get_string_array("empty_array").empty());
  EXPECT_EQ(f.type("nested"), GgufValueType::array);
  EXPECT_EQ(f.array_type("nested"), GgufValueType::array);
  EXPECT_EQ(f.array_size("tokens"), 4u);

  io::GgufValue nested = f.value("nested");
  ASSERT_EQ(nested.count, 3u);
  ASSERT_EQ(nested.elements.size(), 3u);
  EXPECT_EQ(nested.elements[0].element_type, GgufValueType::uint32);
  ASSERT_EQ(nested.elements[0].elements.size(), 2u);
  EXPECT_EQ(nested.elements[0].elements[1].u, 2u);
  EXPECT_EQ(nested.elements[1].count, 0u);
  EXPECT_EQ(nested.elements[2].elements[0].u, 3u);
  io::GgufValue strings = f.value("nested_strings");
  EXPECT_EQ(strings.elements[0].elements[1].s, "bc");
  io::GgufValue cut = f.value("tokens", 2);  // abbreviated: first two of four
  EXPECT_EQ(cut.count, 4u);
  ASSERT_EQ(cut.elements.size(), 2u);
  EXPECT_EQ(cut.elements[0].s, "<s>");
  EXPECT_EQ(f.value("u64").u, std::numeric_limits<uint64_t>::max());
}

TEST(Gguf, GettersNameTheKeyWhenMissingOrOfAnotherType) {
  auto w = every_value_type();
  GgufFile f = GgufFile::from_bytes(w.bytes(), "values.gguf");
  EXPECT_FALSE(f.has("nope"));
  EXPECT_NE(io_error_of([&] { f.get_int("nope"); }).find("'nope' is missing"), std::string::npos);
  EXPECT_NE(io_error_of([&] { f.get_int("f32"); }).find("'f32' is a float32, not an integer"),
            std::string::npos);
  EXPECT_NE(io_error_of([&] { f.get_string("u8"); }).find("'u8'"), std::string::npos);
  EXPECT_NE(io_error_of([&] { f.get_bool("u8"); }).find("'u8'"), std::string::npos);
  EXPECT_NE(io_error_of([&] { f.get_float("general.architecture"); }).find("not a number"),
            std::string::npos);
  EXPECT_NE(io_error_of([&] { f.get_string_array("ids"); }).find("array of int32"),
            std::string::npos);
  EXPECT_NE(io_error_of([&] { f.get_int_array("tokens"); }).find("'tokens'"), std::string::npos);
  EXPECT_NE(io_error_of([&] { f.get_int_array("u32"); }).find("not a array"), std::string::npos);
  // In range of int64 or not.
  EXPECT_NE(io_error_of([&] { f.get_int("u64"); }).find("does not fit in int64"),
            std::string::npos);
  EXPECT_NE(io_error_of([&] { f.get_int_array("big"); }).find("'big'"), std::string::npos);
}

// Bytes per block as ggml-common.h's static_asserts state them, written out independently of
// the reader's table.
struct ExpectedType {
  const char* name;
  uint32_t id;
  int64_t block;
  int64_t bytes;
};
constexpr ExpectedType kExpectedTypes[] = {
    {"F32", 0, 1, 4},       {"F16", 1, 1, 2},       {"Q4_0", 2, 32, 18},    {"Q4_1", 3, 32, 20},
    {"Q5_0", 6, 32, 22},    {"Q5_1", 7, 32, 24},    {"Q8_0", 8, 32, 34},    {"Q4_K", 12, 256, 144},
    {"Q5_K", 13, 256, 176}, {"Q6_K", 14, 256, 210}, {"IQ4_NL", 20, 32, 18}, {"BF16", 30, 1, 2},
};

TEST(Gguf, TypeTableMatchesGgml) {
  EXPECT_EQ(io::ggml_types().size(), std::size(kExpectedTypes));
  for (const auto& want : kExpectedTypes) {
    const io::GgmlTypeTraits* row = io::find_ggml_type(want.id);
    ASSERT_NE(row, nullptr) << want.name;
    EXPECT_STREQ(row->name, want.name);
    EXPECT_EQ(row->block_size, want.block) << want.name;
    EXPECT_EQ(row->bytes_per_block, want.bytes) << want.name;
  }
  EXPECT_EQ(io::find_ggml_type(10), nullptr);
  EXPECT_EQ(io::ggml_type_name(10), "Q2_K");
  EXPECT_EQ(io::ggml_type_name(1000), "unknown type 1000");
}

TEST(Gguf, ReadsTensorsOfEveryTypeFromDisk) {
  ScratchDir dir;
  GgufWriter w;
  w.add("general.architecture", W::string("test"));
  std::vector<std::vector<std::byte>> datas;
  for (const auto& t : kExpectedTypes) {
    // Two rows of two blocks each, as a [2, 2 * block] matrix; GGUF order {2 * block, 2}.
    size_t bytes = static_cast<size_t>(4 * t.bytes);
    datas.push_back(pattern_bytes(bytes, t.id));
    w.add_tensor(std::string("t.") + t.name, t.id, {static_cast<uint64_t>(2 * t.block), 2},
                 datas.back());
  }
  w.add_tensor("vector", 0, {3}, pattern_bytes(12, 99));
  w.write(dir.file("tensors.gguf"));
  GgufFile f = GgufFile::open(dir.file("tensors.gguf"));
  ASSERT_EQ(f.tensors().size(), std::size(kExpectedTypes) + 1);
  EXPECT_EQ(f.alignment(), 32u);
  EXPECT_EQ(f.data_offset() % 32, 0u);
  for (size_t i = 0; i < std::size(kExpectedTypes); ++i) {
    const auto& want = kExpectedTypes[i];
    const io::GgufTensorInfo& t = f.tensors()[i];
    EXPECT_EQ(t.name, std::string("t.") + want.name);
    EXPECT_EQ(f.find_tensor(t.name), &t);
    EXPECT_EQ(t.traits->id(), want.id);
    EXPECT_STREQ(t.traits->name, want.name);
    EXPECT_EQ(t.ne, (std::vector<int64_t>{2 * want.block, 2}));
    EXPECT_EQ(t.shape, (Extents{2, 2 * want.block}));  // row-major: rows first
    EXPECT_EQ(t.numel, 4 * want.block);
    EXPECT_EQ(t.byte_size, static_cast<uint64_t>(4 * want.bytes));
    EXPECT_EQ(t.offset % 32, 0u);
    EXPECT_EQ(t.file_offset, f.data_offset() + t.offset);
    auto bytes = f.tensor_bytes(t);
    ASSERT_EQ(bytes.size(), datas[i].size());
    EXPECT_TRUE(std::equal(bytes.begin(), bytes.end(), datas[i].begin())) << want.name;
  }
  EXPECT_EQ(f.find_tensor("vector")->shape, (Extents{3}));
  EXPECT_EQ(f.find_tensor("missing"), nullptr);
}

TEST(Gguf, HonoursGeneralAlignment) {
  GgufWriter w;
  w.set_alignment(64);
  w.add_tensor("a", 0, {3}, pattern_bytes(12, 1));
  w.add_tensor("b", 0, {5}, pattern_bytes(20, 2));
  GgufFile f = GgufFile::from_bytes(w.bytes());
  EXPECT_EQ(f.alignment(), 64u);
  EXPECT_EQ(f.data_offset() % 64, 0u);
  EXPECT_EQ(f.find_tensor("b")->offset, 64u);
  auto b = f.tensor_bytes(*f.find_tensor("b"));
  EXPECT_EQ(b[0], pattern_bytes(20, 2)[0]);
}

TEST(Gguf, ReadsVersion2) {
  GgufWriter w(2);
  w.add("k", W::u32(5));
  EXPECT_EQ(GgufFile::from_bytes(w.bytes()).version(), 2u);
}

std::string open_error(GgufWriter& w) {
  return io_error_of([&] { GgufFile::from_bytes(w.bytes(), "bad.gguf"); });
}
std::string open_error(std::vector<std::byte> bytes) {
  return io_error_of([&] { GgufFile::from_bytes(std::move(bytes), "bad.gguf"); });
}
template <class T>
void poke(std::vector<std::byte>& bytes, size_t at, T value) {
  std::memcpy(bytes.data() + at, &value, sizeof(T));
}
#define EXPECT_HAS(haystack, needle) \
  EXPECT_NE(std::string(haystack).find(needle), std::string::npos) << (haystack)

TEST(Gguf, RejectsBadHeaders) {
  GgufWriter w;
  w.add("k", W::u32(1));
  auto good = w.bytes();
  auto bad = good;
  bad[0] = std::byte{'X'};
  EXPECT_HAS(open_error(bad), "not a GGUF file");
  bad = good;
  poke<uint32_t>(bad, 4, 1);
  EXPECT_HAS(open_error(bad), "version 1 is not supported");
  poke<uint32_t>(bad, 4, 0x03000000);
  EXPECT_HAS(open_error(bad), "big-endian");
  poke<uint32_t>(bad, 4, 4);
  EXPECT_HAS(open_error(bad), "unsupported GGUF version 4");
  bad = good;
  poke<uint64_t>(bad, 8, uint64_t{1} << 60);
  EXPECT_HAS(open_error(bad), "tensor count 1152921504606846976 cannot fit");
  bad = good;
  poke<uint64_t>(bad, 16, ~uint64_t{0});
  EXPECT_HAS(open_error(bad), "metadata count");
  EXPECT_HAS(open_error(std::vector<std::byte>{}), "magic");
  EXPECT_HAS(open_error(std::vector<std::byte>(good.begin(), good.begin() + 6)), "version");
}

TEST(Gguf, EveryTruncationFails) {
  auto w = every_value_type();
  w.add_tensor("w", 8, {64, 2}, pattern_bytes(4 * 34, 3));
  auto good = w.bytes();
  // The file ends with padding after the tensor's data; cutting only padding leaves it valid.
  size_t end_of_data = GgufFile::from_bytes(good).data_offset() + 4 * 34;
  ASSERT_LT(end_of_data, good.size());
  for (size_t n = 0; n < good.size(); ++n) {
    std::vector<std::byte> cut(good.begin(), good.begin() + static_cast<ptrdiff_t>(n));
    if (n >= end_of_data) {
      EXPECT_EQ(GgufFile::from_bytes(cut).tensors().size(), 1u);
      continue;
    }
    std::string message = open_error(cut);
    EXPECT_HAS(message, "bad.gguf: ");
  }
}

TEST(Gguf, RejectsHostileLengthsNamingTheKey) {
  GgufWriter w;
  w.add("general.name", W::string("abc"));
  w.add("tokens", W::strings({"x", "y"}));
  auto good = w.bytes();
  // Fields: magic? no — version(0), tensor count(1), kv count(2), key len(3), type(4),
  // string len(5), key len(6), type(7), array type(8), array count(9), element lengths(10, 11).
  const auto& fields = w.fields();
  ASSERT_EQ(fields.size(), 12u);
  auto bad = good;
  poke<uint64_t>(bad, fields[5].first, uint64_t{1} << 62);
  EXPECT_HAS(open_error(bad), "'general.name'");
  bad = good;
  poke<uint64_t>(bad, fields[9].first, ~uint64_t{0});
  EXPECT_HAS(open_error(bad), "array length 18446744073709551615 of 'tokens'");
  bad = good;
  poke<uint32_t>(bad, fields[8].first, 13);
  EXPECT_HAS(open_error(bad), "invalid GGUF value type 13");
  bad = good;
  poke<uint64_t>(bad, fields[11].first, 1000);
  EXPECT_HAS(open_error(bad), "'tokens'");
  bad = good;
  poke<uint64_t>(bad, fields[3].first, uint64_t{1} << 40);
  EXPECT_HAS(open_error(bad), "key of metadata entry 0");
}

TEST(Gguf, RejectsBadMetadata) {
  {
    GgufWriter w;
    w.add("a", W::u32(1));
    w.add("a", W::u32(2));
    EXPECT_HAS(open_error(w), "duplicate metadata key 'a'");
  }
  {
    GgufWriter w;
    w.add("", W::u32(1));
    EXPECT_HAS(open_error(w), "empty key");
  }
  {
    // Arrays nested nine deep.
    W::Value v = W::array(W::U8, {W::u8(1)});
    for (int i = 0; i < 8; ++i) v = W::array(W::ARRAY, {v});
    GgufWriter w;
    w.add("deep", v);
    EXPECT_HAS(open_error(w), "nested deeper than 8 levels in the value of 'deep'");
  }
  {
    W::Value v = W::array(W::U8, {W::u8(1)});
    for (int i = 0; i < 7; ++i) v = W::array(W::ARRAY, {v});
    GgufWriter w;
    w.add("deep", v);  // eight levels are fine
    EXPECT_EQ(GgufFile::from_bytes(w.bytes()).array_size("deep"), 1u);
  }
  for (uint32_t alignment : {0u, 3u, 48u, 1u << 31}) {
    GgufWriter w;
    w.add("general.alignment", W::u32(alignment));
    EXPECT_HAS(open_error(w), "general.alignment is");
  }
  {
    GgufWriter w;
    w.add("general.alignment", W::string("32"));
    EXPECT_HAS(open_error(w), "general.alignment is a string");
  }
}

TEST(Gguf, RejectsBadTensorInfosNamingTheTensor) {
  auto one = [](uint32_t type, std::vector<uint64_t> ne, size_t bytes, int64_t offset = -1) {
    GgufWriter w;
    w.add("general.architecture", W::string("t"));
    w.add_tensor("first", 0, {4}, pattern_bytes(16, 0));
    w.add_tensor("blk.0.w", type, std::move(ne), pattern_bytes(bytes, 1), offset);
    return open_error(w);
  };
  EXPECT_HAS(one(10, {256}, 84), "tensor 'blk.0.w'");
  EXPECT_HAS(one(10, {256}, 84), "type Q2_K (ggml type 10), which Loom does not read");
  EXPECT_HAS(one(77, {32}, 84), "unknown type 77");
  EXPECT_HAS(one(2, {48}, 54), "rows of 48 elements, not a multiple of its block size 32");
  EXPECT_HAS(one(0, {1, 1, 1, 1, 1}, 4), "'blk.0.w' (info at offset");
  EXPECT_HAS(one(0, {1, 1, 1, 1, 1}, 4), "5 dimensions");
  EXPECT_HAS(one(0, {uint64_t{1} << 40, uint64_t{1} << 40}, 4), "too many elements");
  EXPECT_HAS(one(0, {0, ~uint64_t{0}}, 0), "too many elements");
  EXPECT_HAS(one(0, {4}, 16, 8), "data offset 8, not a multiple of the alignment 32");
  EXPECT_HAS(one(0, {4}, 16, 0), "tensors 'first' and 'blk.0.w' overlap");
  {
    GgufWriter w;
    w.add_tensor("w", 0, {4}, pattern_bytes(16, 0));
    w.add_tensor("w", 0, {4}, pattern_bytes(16, 0));
    EXPECT_HAS(open_error(w), "duplicate tensor 'w'");
  }
  {
    GgufWriter w;
    w.add_tensor("w", 0, {1024}, pattern_bytes(16, 0));  // claims 4096 bytes, has 16
    EXPECT_HAS(open_error(w), "tensor 'w' data [0, 4096) lies outside the data section");
  }
  {
    GgufWriter w;
    w.add_tensor("w", 0, {4}, pattern_bytes(16, 0), int64_t{1} << 62);
    EXPECT_HAS(open_error(w), "tensor 'w' data [4611686018427387904");
  }
}

TEST(Gguf, OpenNamesThePath) {
  ScratchDir dir;
  EXPECT_HAS(io_error_of([&] { GgufFile::open(dir.file("absent.gguf")); }),
             "cannot open '" + dir.file("absent.gguf") + "'");
  EXPECT_HAS(io_error_of([&] { GgufFile::open(dir.file("")); }), "not a regular file");
  write_file(dir.file("empty.gguf"), {});
  EXPECT_HAS(io_error_of([&] { GgufFile::open(dir.file("empty.gguf")); }),
             dir.file("empty.gguf") + ": truncated or corrupt: magic");
}

TEST(Gguf, ReadsTheBundledSmolLM2) {
  std::string path = smollm2_path();
  if (path.empty()) GTEST_SKIP() << "the model is not fetched (scripts/fetch_model.sh)";
  GgufFile f = GgufFile::open(path);
  // Expected values as gguf-py 0.19 reads them (python/tests/test_gguf_reference.py compares
  // everything; these are the ones a model loader relies on).
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.get_string("general.architecture"), "llama");
  EXPECT_EQ(f.get_int("llama.block_count"), 30);
  EXPECT_EQ(f.get_int("llama.embedding_length"), 576);
  EXPECT_EQ(f.get_int("llama.attention.head_count"), 9);
  EXPECT_EQ(f.get_int("llama.attention.head_count_kv"), 3);
  EXPECT_EQ(f.get_float("llama.rope.freq_base"), 100000.0);
  EXPECT_EQ(f.get_float("llama.attention.layer_norm_rms_epsilon"), static_cast<double>(1e-5f));
  EXPECT_FALSE(f.get_bool("tokenizer.ggml.add_bos_token"));
  auto tokens = f.get_string_array("tokenizer.ggml.tokens");
  ASSERT_EQ(tokens.size(), 49152u);
  EXPECT_EQ(tokens[1], "<|im_start|>");
  EXPECT_EQ(f.get_int_array("tokenizer.ggml.token_type").size(), 49152u);
  EXPECT_EQ(f.get_string_array("tokenizer.ggml.merges")[0], "\xc4\xa0 t");
  ASSERT_EQ(f.tensors().size(), 272u);
  const io::GgufTensorInfo* embed = f.find_tensor("token_embd.weight");
  ASSERT_NE(embed, nullptr);
  EXPECT_EQ(embed->type, io::GgmlType::Q8_0);
  EXPECT_EQ(embed->ne, (std::vector<int64_t>{576, 49152}));
  EXPECT_EQ(embed->shape, (Extents{49152, 576}));
  EXPECT_EQ(embed->file_offset, 1785664u);
  EXPECT_EQ(embed->byte_size, 30081024u);
  const io::GgufTensorInfo* down = f.find_tensor("blk.0.ffn_down.weight");
  ASSERT_NE(down, nullptr);
  EXPECT_EQ(down->type, io::GgmlType::Q4_1);
  EXPECT_EQ(down->shape, (Extents{576, 1536}));
  EXPECT_EQ(down->file_offset, 31868992u);
  EXPECT_EQ(down->byte_size, 552960u);
  uint64_t total = 0;
  for (const auto& t : f.tensors()) total += f.tensor_bytes(t).size();
  EXPECT_LE(total, f.file_size() - f.data_offset());
}

}  // namespace
}  // namespace loom::test
