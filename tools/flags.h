// Checks for command-line values, with messages that say what a value must be.
#pragma once

#include <CLI/CLI.hpp>
#include <charconv>
#include <cstdint>
#include <string>

namespace loom::tools {

// A count: a whole number from 1 to `max`. (CLI::Range would call "abc" "not in range".)
inline CLI::Validator positive_integer(int64_t max) {
  return CLI::Validator(
      [max](std::string& text) -> std::string {
        int64_t value = 0;
        const char* end = text.data() + text.size();
        auto [stop, error] = std::from_chars(text.data(), end, value);
        if (error != std::errc() || stop != end || value < 1 || value > max) {
          return "must be a positive integer (1 to " + std::to_string(max) + "), not '" + text +
                 "'";
        }
        return "";
      },
      "INT in [1 - " + std::to_string(max) + "]");
}

}  // namespace loom::tools
