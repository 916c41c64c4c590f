#include "models/utf8.h"

namespace loom::models {

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += char(cp);
  } else if (cp < 0x800) {
    out += char(0xC0 | (cp >> 6));
    out += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += char(0xE0 | (cp >> 12));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  } else {
    out += char(0xF0 | (cp >> 18));
    out += char(0x80 | ((cp >> 12) & 0x3F));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  }
}

int utf8_sequence_length(unsigned char lead) {
  if (lead < 0x80) return 1;
  if (lead < 0xC2) return 0;
  if (lead < 0xE0) return 2;
  if (lead < 0xF0) return 3;
  if (lead < 0xF5) return 4;
  return 0;
}

int utf8_check_prefix(std::string_view bytes) {
  if (bytes.empty()) return 0;
  auto lead = (unsigned char)bytes[0];
  int length = utf8_sequence_length(lead);
  if (length == 0) return -1;
  for (int i = 1; i < length; ++i) {
    if (size_t(i) >= bytes.size()) return 0;  // so far a valid prefix: wait for more
    auto c = (unsigned char)bytes[i];
    // The second byte's range depends on the lead (no overlongs, surrogates or > U+10FFFF).
    unsigned char lo = 0x80, hi = 0xBF;
    if (i == 1) {
      if (lead == 0xE0) lo = 0xA0;
      if (lead == 0xED) hi = 0x9F;
      if (lead == 0xF0) lo = 0x90;
      if (lead == 0xF4) hi = 0x8F;
    }
    if (c < lo || c > hi) return -i;
  }
  return length;
}

uint32_t decode_utf8(std::string_view b, int length) {
  auto at = [&](int i) { return uint32_t((unsigned char)b[size_t(i)]); };
  switch (length) {
    case 1:
      return at(0);
    case 2:
      return ((at(0) & 0x1F) << 6) | (at(1) & 0x3F);
    case 3:
      return ((at(0) & 0x0F) << 12) | ((at(1) & 0x3F) << 6) | (at(2) & 0x3F);
    default:
      return ((at(0) & 0x07) << 18) | ((at(1) & 0x3F) << 12) | ((at(2) & 0x3F) << 6) |
             (at(3) & 0x3F);
  }
}

namespace {
// Appends the shown part of `bytes` to `out`; returns how many bytes were consumed. With
// `final_chunk`, an incomplete tail is replaced too and everything is consumed.
size_t repair(std::string_view bytes, std::string& out, bool final_chunk) {
  size_t i = 0;
  while (i < bytes.size()) {
    int n = utf8_check_prefix(bytes.substr(i));
    if (n > 0) {
      out.append(bytes.substr(i, size_t(n)));
      i += size_t(n);
    } else if (n < 0) {
      out += kUtf8Replacement;
      i += size_t(-n);
    } else if (final_chunk) {
      out += kUtf8Replacement;  // an incomplete sequence at the very end is one maximal subpart
      i = bytes.size();
    } else {
      break;
    }
  }
  return i;
}
}  // namespace

std::string sanitize_utf8(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  repair(bytes, out, true);
  return out;
}

std::string take_complete_utf8(std::string& pending) {
  std::string out;
  size_t used = repair(pending, out, false);
  pending.erase(0, used);
  return out;
}

}  // namespace loom::models
