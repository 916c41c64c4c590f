// `loom fft-filter INPUT.png OUTPUT.png --low-pass SIGMA | --high-pass SIGMA`: filters a
// photograph in the frequency domain: rfft over (height, width) of each channel, times a
// Gaussian transfer function, irfft. The low-pass transfer exp(-2 pi^2 sigma^2 |f|^2) (f in
// cycles per pixel) is the spectrum of a spatial Gaussian blur of standard deviation sigma
// pixels with periodic edges; the high-pass one is 1 minus it, shown around mid-grey (level
// 128 of 255 is added, since the result has no mean; 128, not 127.5, so that flat regions do
// not land on a rounding boundary).
#include <fmt/format.h>

#include <cmath>
#include <memory>

#include "commands.h"
#include "loom/loom.h"
#include "png_io.h"

namespace loom::tools {

namespace {

// The transfer function on the rfft grid [height, width / 2 + 1], as c64 with zero imaginary
// parts (mul needs one dtype).
TensorData gaussian_transfer(int64_t height, int64_t width, double sigma, bool high_pass) {
  const int64_t bins = width / 2 + 1;
  std::vector<float> h(size_t(height * bins));
  const double k = 2.0 * M_PI * M_PI * sigma * sigma;
  for (int64_t y = 0; y < height; ++y) {
    const double fy = double(y <= height / 2 ? y : y - height) / double(height);
    for (int64_t x = 0; x < bins; ++x) {
      const double fx = double(x) / double(width);
      const double low = std::exp(-k * (fy * fy + fx * fx));
      h[size_t(y * bins + x)] = float(high_pass ? 1.0 - low : low);
    }
  }
  return TensorData::from_floats(h, DType::c64, {height, bins});
}

int run_fft_filter(const std::string& input, const std::string& output, double low, double high,
                   const std::string& device_name) {
  try {
    const bool high_pass = high > 0;
    const double sigma = high_pass ? high : low;
    Device device = Device::parse(device_name);
    Image image = read_png(input);
    Graph g;
    Tensor x = g.placeholder("image", {image.channels, image.height, image.width});
    Tensor spectrum = rfft(x, {-2, -1});
    Tensor filtered =
        spectrum * g.constant(gaussian_transfer(image.height, image.width, sigma, high_pass));
    Tensor y = irfft(filtered, image.width, {-2, -1});
    if (high_pass) y = y + 128.0 / 255.0;
    CompileOptions options;
    options.device = device;
    options.outputs = {y};
    Executable exe = compile(g, options);
    TensorData in = TensorData::from_floats(image.values, DType::f32,
                                            {image.channels, image.height, image.width});
    image.values = exe.run({{"image", in}}).at(0).to_floats();
    write_png(output, image);
    fmt::print("{}: {}x{}, {} channel{}, {} Gaussian sigma {} px -> {}\n", input, image.width,
               image.height, image.channels, image.channels == 1 ? "" : "s",
               high_pass ? "high-pass" : "low-pass", sigma, output);
    return 0;
  } catch (const Error& e) {
    fmt::print(stderr, "loom fft-filter: {} error: {}\n", error_kind_name(e.kind()), e.what());
    return 1;
  }
}

}  // namespace

void add_fft_filter_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "fft-filter", "Gaussian low- or high-pass filter of a PNG image in the frequency domain");
  auto input = std::make_shared<std::string>();
  auto output = std::make_shared<std::string>();
  auto low = std::make_shared<double>(0);
  auto high = std::make_shared<double>(0);
  auto device = std::make_shared<std::string>("cpu");
  cmd->add_option("input", *input, "PNG to read")->required();
  cmd->add_option("output", *output, "PNG to write")->required();
  auto positive = CLI::Validator(
      [](std::string& text) -> std::string {
        try {
          size_t used = 0;
          double v = std::stod(text, &used);
          if (used == text.size() && std::isfinite(v) && v > 0) return "";
        } catch (const std::exception&) {
        }
        return "must be a positive number of pixels, not '" + text + "'";
      },
      "SIGMA > 0");
  auto* lp =
      cmd->add_option("--low-pass", *low, "blur: Gaussian of this standard deviation (pixels)")
          ->check(positive);
  auto* hp = cmd->add_option("--high-pass", *high, "1 minus that Gaussian (details, around grey)")
                 ->check(positive);
  lp->excludes(hp);
  cmd->add_option("--device", *device, "cpu, cuda or cuda:N")->capture_default_str();
  cmd->callback([=] {
    if (*low <= 0 && *high <= 0)
      throw CLI::ValidationError("fft-filter", "give --low-pass SIGMA or --high-pass SIGMA");
    int rc = run_fft_filter(*input, *output, *low, *high, *device);
    if (rc != 0) throw CLI::RuntimeError(rc);
  });
}

}  // namespace loom::tools
