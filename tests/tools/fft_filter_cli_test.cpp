// `loom fft-filter` on real photographs (scikit-image's camera and astronaut, fetched by
// scripts/fetch_images.sh) against a direct spatial Gaussian blur computed here in double,
// and its errors for bad files and flags.
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "cli_util.h"
#include "png_io.h"
#include "test_util.h"

namespace loom {
namespace {

namespace fs = std::filesystem;

const std::string kImages = LOOM_IMAGES_DIR;

std::string temp_path(const std::string& name) {
  return (fs::temp_directory_path() / ("loom_fft_filter_" + std::to_string(getpid()) + "_" + name))
      .string();
}

// Circular (periodic edges, as the DFT) convolution of each channel with the sampled Gaussian
// of standard deviation sigma, separable, truncated at 8 sigma (the rest weighs < 1e-14).
std::vector<double> spatial_blur(const tools::Image& image, double sigma) {
  const int64_t radius = int64_t(std::ceil(8 * sigma));
  std::vector<double> kernel;
  for (int64_t i = -radius; i <= radius; ++i)
    kernel.push_back(std::exp(-double(i * i) / (2 * sigma * sigma)) /
                     (sigma * std::sqrt(2 * M_PI)));
  const int64_t h = image.height, w = image.width, plane = h * w;
  std::vector<double> out(image.values.size()), rows(static_cast<size_t>(plane));
  for (int64_t c = 0; c < image.channels; ++c) {
    const float* src = image.values.data() + c * plane;
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x) {
        double s = 0;
        for (int64_t i = -radius; i <= radius; ++i)
          s += kernel[size_t(i + radius)] * src[y * w + ((x + i) % w + w) % w];
        rows[size_t(y * w + x)] = s;
      }
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x) {
        double s = 0;
        for (int64_t i = -radius; i <= radius; ++i)
          s += kernel[size_t(i + radius)] * rows[size_t((((y + i) % h + h) % h) * w + x)];
        out[size_t(c * plane + y * w + x)] = s;
      }
  }
  return out;
}

uint8_t to_level(double v) { return uint8_t(std::lround(std::clamp(v, 0.0, 1.0) * 255.0)); }

// The written PNG against the reference quantised the same way: the transform's error
// (about 1e-6 of full scale) only moves values that lie next to a rounding boundary, by one
// level; so every pixel within one level, and at most 1% of them off by one.
void expect_levels_match(const tools::Image& got, const std::vector<double>& want,
                         const std::string& what) {
  ASSERT_EQ(got.values.size(), want.size()) << what;
  size_t off_by_one = 0, worse = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    const int d = std::abs(int(to_level(got.values[i])) - int(to_level(want[i])));
    off_by_one += d == 1;
    worse += d > 1;
  }
  EXPECT_EQ(worse, 0u) << what;
  EXPECT_LE(off_by_one, want.size() / 100) << what;
}

class FftFilterCli : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(kImages + "/camera.png"))
      GTEST_SKIP() << "no photographs in " << kImages << " (run scripts/fetch_images.sh)";
  }
};

TEST_F(FftFilterCli, LowAndHighPassMatchASpatialGaussianBlur) {
  for (const char* name : {"camera.png", "astronaut.png"})
    for (double sigma : {1.5, 4.0}) {
      const std::string in = kImages + "/" + name;
      const tools::Image original = tools::read_png(in);
      const std::vector<double> blurred = spatial_blur(original, sigma);
      // The blur changes the photograph, so a filter that did nothing would fail.
      size_t changed = 0;
      for (size_t i = 0; i < blurred.size(); ++i)
        changed += to_level(blurred[i]) != to_level(original.values[i]);
      EXPECT_GT(changed, blurred.size() / 4) << name;

      const std::string low = temp_path("low.png"), high = temp_path("high.png");
      std::string out;
      ASSERT_EQ(testing::run_cli(
                    "fft-filter " + in + " " + low + " --low-pass " + std::to_string(sigma), &out),
                0)
          << out;
      ASSERT_EQ(
          testing::run_cli(
              "fft-filter " + in + " " + high + " --high-pass " + std::to_string(sigma), &out),
          0)
          << out;
      const std::string what = std::string(name) + " sigma " + std::to_string(sigma);
      expect_levels_match(tools::read_png(low), blurred, "low-pass " + what);
      std::vector<double> details(blurred.size());
      for (size_t i = 0; i < details.size(); ++i)
        details[i] = 128.0 / 255.0 + original.values[i] - blurred[i];
      expect_levels_match(tools::read_png(high), details, "high-pass " + what);
      fs::remove(low);
      fs::remove(high);
    }
}

TEST(FftFilterCliErrors, BadFilesAndFlags) {
  std::string out;
  const std::string missing = temp_path("missing.png");
  EXPECT_NE(
      testing::run_cli("fft-filter " + missing + " " + temp_path("o.png") + " --low-pass 2", &out),
      0);
  EXPECT_NE(out.find("cannot read PNG"), std::string::npos) << out;
  EXPECT_NE(out.find(missing), std::string::npos) << out;

  const std::string text = temp_path("not_a.png");
  std::ofstream(text) << "this is not a PNG file\n";
  EXPECT_NE(
      testing::run_cli("fft-filter " + text + " " + temp_path("o.png") + " --low-pass 2", &out), 0);
  EXPECT_NE(out.find("PNG"), std::string::npos) << out;
  fs::remove(text);

  const std::string in = kImages + "/camera.png";
  EXPECT_NE(testing::run_cli("fft-filter " + in + " " + temp_path("o.png"), &out), 0);
  EXPECT_NE(out.find("--low-pass"), std::string::npos) << out;
  EXPECT_NE(
      testing::run_cli("fft-filter " + in + " " + temp_path("o.png") + " --low-pass -1", &out), 0);
  EXPECT_NE(out.find("positive"), std::string::npos) << out;
  EXPECT_NE(
      testing::run_cli("fft-filter " + in + " " + temp_path("o.png") + " --low-pass abc", &out), 0);
  EXPECT_NE(
      testing::run_cli(
          "fft-filter " + in + " " + temp_path("o.png") + " --low-pass 1 --high-pass 1", &out),
      0);
  EXPECT_NE(testing::run_cli("fft-filter " + in + " /nonexistent-dir/o.png --low-pass 1", &out), 0);
}

}  // namespace
}  // namespace loom
