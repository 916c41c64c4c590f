// libpng's simplified API (png_image) does the decoding, colour conversion and error
// handling; a failure's message comes back in image.message.
#include "png_io.h"

#include <png.h>

#include <algorithm>
#include <cmath>

#include "loom/error.h"

namespace loom::tools {

Image read_png(const std::string& path) {
  png_image png{};
  png.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_file(&png, path.c_str()))
    fail(ErrorKind::io, "cannot read PNG '" + path + "': " + png.message);
  const bool colour = (png.format & PNG_FORMAT_FLAG_COLOR) != 0;
  png.format = colour ? PNG_FORMAT_RGB : PNG_FORMAT_GRAY;
  Image image;
  image.channels = colour ? 3 : 1;
  image.height = png.height;
  image.width = png.width;
  std::vector<uint8_t> pixels(PNG_IMAGE_SIZE(png));
  if (!png_image_finish_read(&png, nullptr, pixels.data(), 0, nullptr)) {
    std::string message = png.message;
    png_image_free(&png);
    fail(ErrorKind::io, "cannot decode PNG '" + path + "': " + message);
  }
  const int64_t plane = image.height * image.width;
  image.values.resize(size_t(image.channels * plane));
  for (int64_t i = 0; i < plane; ++i)
    for (int64_t c = 0; c < image.channels; ++c)
      image.values[size_t(c * plane + i)] = float(pixels[size_t(i * image.channels + c)]) / 255.f;
  return image;
}

void write_png(const std::string& path, const Image& image) {
  if (image.channels != 1 && image.channels != 3)
    fail(ErrorKind::value, "write_png: 1 or 3 channels, got " + std::to_string(image.channels));
  png_image png{};
  png.version = PNG_IMAGE_VERSION;
  png.width = png_uint_32(image.width);
  png.height = png_uint_32(image.height);
  png.format = image.channels == 3 ? PNG_FORMAT_RGB : PNG_FORMAT_GRAY;
  const int64_t plane = image.height * image.width;
  std::vector<uint8_t> pixels(size_t(plane * image.channels));
  for (int64_t i = 0; i < plane; ++i)
    for (int64_t c = 0; c < image.channels; ++c) {
      const float v = std::clamp(image.values[size_t(c * plane + i)], 0.f, 1.f);
      pixels[size_t(i * image.channels + c)] = uint8_t(std::lround(v * 255.f));
    }
  if (!png_image_write_to_file(&png, path.c_str(), 0, pixels.data(), 0, nullptr))
    fail(ErrorKind::io, "cannot write PNG '" + path + "': " + png.message);
}

}  // namespace loom::tools
