// Seeded mutation fuzzing of the GGUF and safetensors readers: bit flips, byte changes,
// truncations, inserted and deleted bytes, and integer fields (lengths, counts, types, dims,
// offsets) set to boundary values. Every mutant must either open — and then every getter and
// tensor span must work or throw loom::Error(io) — or throw loom::Error(io); nothing else, and
// no allocation larger than a small multiple of the file. The seed is printed; set
// LOOM_FUZZ_SEED to replay one, LOOM_FUZZ_ITERATIONS to run more.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <random>

#include "io/allocation_tracker.h"
#include "io/gguf.h"
#include "io/gguf_writer.h"
#include "io/io_test_util.h"
#include "io/safetensors.h"
#include "io/safetensors_writer.h"

namespace loom::test {
namespace {

using W = GgufWriter;

uint64_t env_or(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  return v ? std::strtoull(v, nullptr, 10) : fallback;
}

std::vector<std::byte> pattern(size_t n, unsigned seed) {
  std::vector<std::byte> out(n);
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<std::byte>((i * 37 + seed) & 0xff);
  return out;
}

// A small valid GGUF with every kind of metadata and a few tensor types; its integer fields.
struct Seed {
  std::vector<std::byte> bytes;
  std::vector<std::pair<size_t, int>> fields;
};

Seed gguf_seed() {
  GgufWriter w;
  w.add("general.architecture", W::string("llama"));
  w.set_alignment(32);
  w.add("llama.block_count", W::u32(2));
  w.add("i8", W::i8(-1));
  w.add("u16", W::u16(7));
  w.add("i64", W::i64(-5));
  w.add("u64", W::u64(9));
  w.add("f32", W::f32(0.5f));
  w.add("f64", W::f64(2.0));
  w.add("flag", W::boolean(true));
  w.add("tokens", W::strings({"a", "bc", "", "def"}));
  w.add("scores", W::array(W::F32, {W::f32(1), W::f32(2), W::f32(3)}));
  w.add("types", W::array(W::I32, {W::i32(1), W::i32(3)}));
  w.add("nested", W::array(W::ARRAY, {W::array(W::U8, {W::u8(1), W::u8(2)}),
                                      W::array(W::STRING, {W::string("x")})}));
  w.add_tensor("token_embd.weight", 8, {32, 2}, pattern(68, 1));  // Q8_0
  w.add_tensor("norm", 0, {4}, pattern(16, 2));                   // F32
  w.add_tensor("w", 12, {256, 1}, pattern(144, 3));               // Q4_K
  w.add_tensor("h", 1, {2, 3}, pattern(12, 4));                   // F16
  Seed s;
  s.bytes = w.bytes();
  s.fields = w.fields();
  return s;
}

Seed safetensors_seed() {
  Seed s;
  s.bytes = make_safetensors({{"a", "F32", {2, 2}, pattern(16, 1)},
                              {"b", "BF16", {3}, pattern(6, 2)},
                              {"c", "I64", {1}, pattern(8, 3)},
                              {"d", "BOOL", {2}, pattern(2, 4)}},
                             {{"format", "pt"}});
  s.fields = {{0, 8}};  // the header length
  return s;
}

class Mutator {
 public:
  explicit Mutator(uint64_t seed) : rng_(seed) {}

  std::vector<std::byte> mutate(const Seed& seed, bool text) {
    std::vector<std::byte> b = seed.bytes;
    int count = 1 + static_cast<int>(below(3));
    for (int m = 0; m < count; ++m) {
      switch (below(text ? 8 : 7)) {
        case 0:  // flip one bit
          if (!b.empty()) b[below(b.size())] ^= static_cast<std::byte>(1u << below(8));
          break;
        case 1:  // one random byte
          if (!b.empty()) b[below(b.size())] = static_cast<std::byte>(below(256));
          break;
        case 2:  // truncate
          b.resize(below(b.size() + 1));
          break;
        case 3:  // delete or insert a few bytes
          if (!b.empty() && below(2)) {
            size_t at = below(b.size());
            b.erase(b.begin() + static_cast<ptrdiff_t>(at),
                    b.begin() + static_cast<ptrdiff_t>(std::min(b.size(), at + 1 + below(8))));
          } else {
            size_t at = below(b.size() + 1);
            b.insert(b.begin() + static_cast<ptrdiff_t>(at), 1 + below(8),
                     static_cast<std::byte>(below(256)));
          }
          break;
        case 4:  // an integer field set to a boundary value
        case 5:
        case 6: {
          if (seed.fields.empty()) break;
          auto [at, width] = seed.fields[below(seed.fields.size())];
          uint64_t value = boundary(b.size(), read_field(b, at, width));
          write_field(b, at, width, value);
          break;
        }
        case 7:  // safetensors: a number in the JSON header replaced
          replace_number(b);
          break;
      }
    }
    return b;
  }

 private:
  uint64_t below(uint64_t n) { return n == 0 ? 0 : rng_() % n; }

  uint64_t boundary(uint64_t file_size, uint64_t current) {
    static constexpr uint64_t kValues[] = {
        0,          1,          2,          3,          4,          7,          8,
        12,         13,         31,         32,         33,         0x7f,       0x80,
        0xff,       0x100,      0x7fff,     0xffff,     0x7fffffff, 0x80000000, 0xffffffff,
        1ull << 32, 1ull << 40, 1ull << 62, ~0ull >> 1, 1ull << 63, ~0ull,      ~0ull - 1};
    switch (below(4)) {
      case 0:
        return current + 1;
      case 1:
        return current - 1;
      case 2:
        return file_size + below(64) - 32;
      default:
        return kValues[below(std::size(kValues))];
    }
  }
  static uint64_t read_field(const std::vector<std::byte>& b, size_t at, int width) {
    uint64_t v = 0;
    if (at + static_cast<size_t>(width) <= b.size()) std::memcpy(&v, b.data() + at, width);
    return v;
  }
  static void write_field(std::vector<std::byte>& b, size_t at, int width, uint64_t v) {
    if (at + static_cast<size_t>(width) <= b.size()) std::memcpy(b.data() + at, &v, width);
  }
  void replace_number(std::vector<std::byte>& b) {
    static const char* kNumbers[] = {
        "0",   "-1", "1e400", "18446744073709551616", "4611686018427387904", "99999999999999999999",
        "1.5", "[]"};
    std::vector<size_t> digits;
    for (size_t i = 8; i < b.size(); ++i)
      if (b[i] >= std::byte{'0'} && b[i] <= std::byte{'9'}) digits.push_back(i);
    if (digits.empty()) return;
    size_t at = digits[below(digits.size())];
    const char* number = kNumbers[below(std::size(kNumbers))];
    b.erase(b.begin() + static_cast<ptrdiff_t>(at));
    b.insert(b.begin() + static_cast<ptrdiff_t>(at), reinterpret_cast<const std::byte*>(number),
             reinterpret_cast<const std::byte*>(number) + std::strlen(number));
  }

  std::mt19937_64 rng_;
};

// Calls fn; a loom::Error must be of kind io. Returns false when it threw.
template <class Fn>
bool io_ok(Fn&& fn, uint64_t seed, uint64_t iteration) {
  try {
    fn();
    return true;
  } catch (const loom::Error& e) {
    if (e.kind() != ErrorKind::io)
      ADD_FAILURE() << "seed " << seed << " iteration " << iteration << ": error of kind "
                    << error_kind_name(e.kind()) << ": " << e.what();
    return false;
  }
}

// Uses everything an opened file offers: the getter that fits each key's type (throwing is
// costly, so the ill-fitting getters run for the first key only).
void exercise(const io::GgufFile& f, uint64_t seed, uint64_t i) {
  using T = io::GgufValueType;
  auto is_int = [](T t) {
    return t == T::uint8 || t == T::int8 || t == T::uint16 || t == T::int16 || t == T::uint32 ||
           t == T::int32 || t == T::uint64 || t == T::int64;
  };
  auto is_float = [](T t) { return t == T::float32 || t == T::float64; };
  bool first = true;
  for (const auto& key : f.keys()) {
    io_ok([&] { f.value(key, 3); }, seed, i);
    T type = f.type(key);
    if (first || is_int(type)) io_ok([&] { f.get_int(key); }, seed, i);
    if (first || is_int(type) || is_float(type)) io_ok([&] { f.get_float(key); }, seed, i);
    if (first || type == T::string) io_ok([&] { f.get_string(key); }, seed, i);
    if (first || type == T::boolean) io_ok([&] { f.get_bool(key); }, seed, i);
    if (type == T::array || first) {
      T element = type == T::array ? f.array_type(key) : T::string;
      if (first || element == T::string) io_ok([&] { f.get_string_array(key); }, seed, i);
      if (first || is_int(element)) io_ok([&] { f.get_int_array(key); }, seed, i);
      if (first || is_int(element) || is_float(element))
        io_ok([&] { f.get_float_array(key); }, seed, i);
    }
    first = false;
  }
  for (const auto& t : f.tensors()) {
    auto bytes = f.tensor_bytes(t);
    ASSERT_LE(t.file_offset + t.byte_size, f.file_size()) << "seed " << seed << " iteration " << i;
    ASSERT_EQ(bytes.size(), t.byte_size);
    ASSERT_EQ(f.find_tensor(t.name), &t);
  }
}

void exercise(const io::SafetensorsFile& f, uint64_t seed, uint64_t i) {
  for (const auto& t : f.tensors()) {
    auto bytes = f.tensor_bytes(t);
    ASSERT_LE(t.file_offset + t.byte_size, f.file_size()) << "seed " << seed << " iteration " << i;
    ASSERT_EQ(bytes.size(), t.byte_size);
  }
}

template <class File>
void fuzz(const char* what, const Seed& base, bool text, uint64_t iterations) {
  uint64_t seed = env_or("LOOM_FUZZ_SEED", std::random_device{}());
  std::printf("%s fuzz: seed %llu (LOOM_FUZZ_SEED to replay), %llu iterations\n", what,
              static_cast<unsigned long long>(seed), static_cast<unsigned long long>(iterations));
  Mutator mutator(seed);
  uint64_t opened = 0;
  auto start = std::chrono::steady_clock::now();
  for (uint64_t i = 0; i < iterations; ++i) {
    std::vector<std::byte> bytes = mutator.mutate(base, text);
    size_t size = bytes.size();
    start_tracking_allocations();
    bool ok = io_ok(
        [&] {
          File f = File::from_bytes(std::move(bytes), "mutant");
          stop_tracking_allocations();
          exercise(f, seed, i);
          ++opened;
        },
        seed, i);
    stop_tracking_allocations();
    (void)ok;
    // Opening may build tables proportional to the file, never more.
    ASSERT_LE(largest_allocation(), 64 * size + 4096) << "seed " << seed << " iteration " << i;
    if (testing::Test::HasFailure()) FAIL() << "seed " << seed << " iteration " << i;
  }
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("%s fuzz: %llu of %llu mutants opened, %.1f s\n", what,
              static_cast<unsigned long long>(opened), static_cast<unsigned long long>(iterations),
              seconds);
  // Some mutants must still open (a mutation that only touches data or padding), or the
  // loop would only be testing the first check.
  EXPECT_GT(opened, 0u);
}

TEST(ReaderFuzz, GgufMutants) {
  fuzz<io::GgufFile>("GGUF", gguf_seed(), false, env_or("LOOM_FUZZ_ITERATIONS", 100000));
}

TEST(ReaderFuzz, GgufFixtureMutants) {
  std::ifstream in(std::string(LOOM_TEST_DATA_DIR) + "/small.gguf", std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_FALSE(text.empty());
  Seed s;
  s.bytes.assign(reinterpret_cast<const std::byte*>(text.data()),
                 reinterpret_cast<const std::byte*>(text.data()) + text.size());
  fuzz<io::GgufFile>("GGUF (gguf-py file)", s, false, env_or("LOOM_FUZZ_ITERATIONS", 100000) / 4);
}

TEST(ReaderFuzz, SafetensorsMutants) {
  fuzz<io::SafetensorsFile>("safetensors", safetensors_seed(), true,
                            env_or("LOOM_FUZZ_ITERATIONS", 100000) / 2);
}

}  // namespace
}  // namespace loom::test
