// UTF-8 repair and streaming: the expected replacements are Python's bytes.decode(errors=
// "replace"), which follows Unicode's "maximal subpart" practice.
#include "models/utf8.h"

#include <gtest/gtest.h>

#include <random>

namespace loom::models {
namespace {

const std::string R(kUtf8Replacement);

bool is_valid_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    int n = utf8_check_prefix(s.substr(i));
    if (n <= 0) return false;
    i += size_t(n);
  }
  return true;
}

TEST(Utf8, SanitizeReplacesMaximalSubpartsLikePython) {
  EXPECT_EQ(sanitize_utf8("\xe2\x82"), R);
  EXPECT_EQ(sanitize_utf8("\xf0\x9f\x98"
                          "a"),
            R + "a");
  EXPECT_EQ(sanitize_utf8("\xed\xa0\x80"), R + R + R);          // a surrogate
  EXPECT_EQ(sanitize_utf8("\xc0\xaf"), R + R);                  // overlong
  EXPECT_EQ(sanitize_utf8("\xf4\x90\x80\x80"), R + R + R + R);  // above U+10FFFF
  EXPECT_EQ(sanitize_utf8("\xe0\x80\xaf"), R + R + R);
  EXPECT_EQ(sanitize_utf8("\x80\xbfx"), R + R + "x");
  EXPECT_EQ(sanitize_utf8("a\xff"
                          "b\xfe"),
            "a" + R + "b" + R);
  EXPECT_EQ(sanitize_utf8("\xf0\x9f\x98\x80"), "\xf0\x9f\x98\x80");
}

TEST(Utf8, EncodeDecodeRoundTripsEveryScalarValue) {
  for (uint32_t cp = 0; cp <= 0x10FFFF; ++cp) {
    if (cp >= 0xD800 && cp <= 0xDFFF) continue;
    std::string s;
    append_utf8(s, cp);
    int n = utf8_check_prefix(s);
    ASSERT_EQ(n, int(s.size())) << cp;
    ASSERT_EQ(decode_utf8(s, n), cp);
  }
}

TEST(Utf8, StreamingHoldsBackSplitCharactersAndNeverShowsBrokenOnes) {
  const std::string text = "a é 中 😀 👨‍👩‍👧 end";
  std::string pending, shown;
  for (char c : text) {
    pending += c;
    std::string chunk = take_complete_utf8(pending);
    EXPECT_TRUE(is_valid_utf8(chunk));
    shown += chunk;
    EXPECT_LT(pending.size(), 4u);
  }
  EXPECT_TRUE(pending.empty());
  EXPECT_EQ(shown, text);
  // An invalid byte shows as U+FFFD at once; an unfinished tail only at the end.
  pending = "x\xff\xe4\xb8";
  EXPECT_EQ(take_complete_utf8(pending), "x" + R);
  EXPECT_EQ(pending, "\xe4\xb8");
  EXPECT_EQ(sanitize_utf8(pending), R);
}

TEST(Utf8, RandomBytesAlwaysComeOutValid) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 2000; ++trial) {
    std::string bytes(size_t(rng() % 12), '\0');
    for (char& c : bytes) c = char(rng() % 4 == 0 ? rng() % 128 : 128 + rng() % 128);
    std::string out = sanitize_utf8(bytes);
    ASSERT_TRUE(is_valid_utf8(out));
    if (is_valid_utf8(bytes)) {
      ASSERT_EQ(out, bytes);
    }
    // Streaming in pieces gives the same as repairing the whole at once.
    std::string pending, streamed;
    for (char c : bytes) {
      pending += c;
      streamed += take_complete_utf8(pending);
    }
    streamed += sanitize_utf8(pending);
    ASSERT_EQ(streamed, out);
  }
}

}  // namespace
}  // namespace loom::models
