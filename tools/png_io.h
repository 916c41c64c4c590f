// PNG files in and out (libpng's simplified API) as planar float images in [0, 1].
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace loom::tools {

struct Image {
  int64_t channels = 0, height = 0, width = 0;  // channels: 1 (grey) or 3 (RGB)
  std::vector<float> values;                    // [channels, height, width], 0..1
};

// Grey images stay grey, colour ones become RGB (alpha is composited onto black); 16-bit
// files are read as 8-bit. Throws loom::Error(io) naming the file and what was wrong.
Image read_png(const std::string& path);
// 8 bits per channel; values are clamped to [0, 1] and rounded. Throws loom::Error(io).
void write_png(const std::string& path, const Image& image);

}  // namespace loom::tools
