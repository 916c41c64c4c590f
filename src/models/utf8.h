// UTF-8 helpers for tokenizers: sequence lengths, code point encoding, and repair of byte
// strings that a model produced (tokens may split a character, or be invalid outright).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace loom::models {

// The replacement character U+FFFD, encoded.
inline constexpr std::string_view kUtf8Replacement = "\xEF\xBF\xBD";

// Appends the UTF-8 encoding of `code_point` (must be <= 0x10FFFF).
void append_utf8(std::string& out, uint32_t code_point);

// How many bytes a sequence starting with `lead` has (1-4), or 0 when `lead` cannot start one
// (a continuation byte, or 0xC0, 0xC1, 0xF5-0xFF).
int utf8_sequence_length(unsigned char lead);

// Length of the valid sequence at the start of `bytes`: > 0 when one is complete and valid;
// 0 when `bytes` is a proper prefix of a valid sequence (more bytes may complete it); -n when
// the first n bytes (n >= 1) are an invalid maximal subpart and become one U+FFFD (the
// Unicode "maximal subpart" rule, as Python and Rust replace them).
int utf8_check_prefix(std::string_view bytes);

// Decodes the valid sequence at the start of `bytes` (as reported by utf8_check_prefix > 0).
uint32_t decode_utf8(std::string_view bytes, int length);

// `bytes` with every invalid maximal subpart (and an incomplete tail) replaced by U+FFFD.
std::string sanitize_utf8(std::string_view bytes);

// Splits off the longest prefix of `pending` that can be shown now: complete characters, with
// invalid bytes replaced. An incomplete sequence at the end stays in `pending`.
std::string take_complete_utf8(std::string& pending);

}  // namespace loom::models
