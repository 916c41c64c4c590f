// Spectral front ends composed of core ops: the STFT (frames, window multiply, rfft), its
// inverse (irfft, window multiply, overlap_add, window-envelope division), and the log-mel
// spectrogram (a constant mel filter bank applied by matmul). Windows and filter banks are
// computed here in double and become graph constants.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "loom/error.h"
#include "loom/fft.h"
#include "loom/ops.h"

namespace loom {

namespace {

constexpr double kPi = 3.14159265358979323846;

struct StftGeometry {
  int64_t n_fft, hop, win_length;
};

StftGeometry geometry(const StftOptions& o) {
  if (o.n_fft < 1)
    fail(ErrorKind::value, "stft: n_fft must be >= 1, got " + std::to_string(o.n_fft));
  StftGeometry g{o.n_fft, o.hop == 0 ? std::max<int64_t>(o.n_fft / 4, 1) : o.hop,
                 o.win_length == 0 ? o.n_fft : o.win_length};
  if (g.hop < 1) fail(ErrorKind::value, "stft: hop must be >= 1, got " + std::to_string(o.hop));
  if (g.win_length < 1 || g.win_length > g.n_fft)
    fail(ErrorKind::value,
         "stft: win_length must be in [1, n_fft], got " + std::to_string(o.win_length));
  if (o.pad_mode != "reflect" && o.pad_mode != "constant")
    fail(ErrorKind::value, "stft: pad_mode must be reflect or constant, got '" + o.pad_mode + "'");
  return g;
}

// The window zero-padded to n_fft, centred (torch.stft's placement of a shorter window).
std::vector<float> padded_window(const StftOptions& o, const StftGeometry& g) {
  std::vector<float> w(size_t(g.n_fft), 0.f);
  std::vector<float> core = window_values(o.window, g.win_length);
  std::copy(core.begin(), core.end(), w.begin() + (g.n_fft - g.win_length) / 2);
  return w;
}

Tensor vector_constant(Graph& graph, const std::vector<float>& values, Extents shape) {
  return graph.constant(TensorData::from_vector(values, std::move(shape)));
}

// Swaps the last two axes of a tensor of `rank`.
std::vector<int64_t> swap_last_two(int rank) {
  std::vector<int64_t> perm(static_cast<size_t>(rank));
  std::iota(perm.begin(), perm.end(), 0);
  std::swap(perm[size_t(rank - 1)], perm[size_t(rank - 2)]);
  return perm;
}

double hz_to_mel(double hz, MelScale scale) {
  if (scale == MelScale::htk) return 2595.0 * std::log10(1.0 + hz / 700.0);
  // Slaney: linear below 1 kHz, logarithmic above (librosa's default).
  const double f_sp = 200.0 / 3, min_log_hz = 1000.0, min_log_mel = min_log_hz / f_sp;
  const double logstep = std::log(6.4) / 27.0;
  return hz >= min_log_hz ? min_log_mel + std::log(hz / min_log_hz) / logstep : hz / f_sp;
}

double mel_to_hz(double mel, MelScale scale) {
  if (scale == MelScale::htk) return 700.0 * (std::pow(10.0, mel / 2595.0) - 1.0);
  const double f_sp = 200.0 / 3, min_log_hz = 1000.0, min_log_mel = min_log_hz / f_sp;
  const double logstep = std::log(6.4) / 27.0;
  return mel >= min_log_mel ? min_log_hz * std::exp(logstep * (mel - min_log_mel)) : f_sp * mel;
}

}  // namespace

std::vector<float> window_values(WindowKind kind, int64_t length) {
  if (length < 1) fail(ErrorKind::value, "window length must be >= 1");
  std::vector<float> w(size_t(length), 1.f);
  if (kind == WindowKind::rectangular || length == 1) return w;
  const double denom = kind == WindowKind::hann_periodic ? double(length) : double(length - 1);
  for (int64_t k = 0; k < length; ++k)
    w[size_t(k)] = float(0.5 - 0.5 * std::cos(2.0 * kPi * double(k) / denom));
  return w;
}

// The STFT in frame-major layout [..., frames, n_fft / 2 + 1]: windowed frames (one pass that
// pads, cuts and multiplies; the unwindowed frames are never written), then rfft of each.
static Tensor frame_major_stft(const Tensor& x, const StftOptions& options) {
  const StftGeometry g = geometry(options);
  if (x.dtype() != DType::f32)
    fail(ErrorKind::dtype,
         std::string("stft: expected an f32 signal, got ") + dtype_name(x.dtype()));
  Graph graph = graph_of(x);
  Tensor windows =
      windowed_frames(x, g.n_fft, g.hop, options.center ? g.n_fft / 2 : 0, options.pad_mode,
                      vector_constant(graph, padded_window(options, g), {g.n_fft}));
  return rfft(windows, {-1}, options.normalized ? FftNorm::ortho : FftNorm::backward);
}

Tensor stft(const Tensor& x, const StftOptions& options) {
  Tensor spectrum = frame_major_stft(x, options);
  return transpose(spectrum, swap_last_two(int(spectrum.shape().size())));
}

Tensor istft(const Tensor& spectrum, const StftOptions& options, int64_t length) {
  const StftGeometry g = geometry(options);
  const Shape& shape = spectrum.shape();
  if (spectrum.dtype() != DType::c64 || shape.size() < 2)
    fail(ErrorKind::dtype, "istft: expected a c64 spectrum [..., n_fft / 2 + 1, frames]");
  const Dim& bins = shape[shape.size() - 2];
  const Dim& frame_dim = shape.back();
  if (!frame_dim.is_static())
    fail(ErrorKind::shape,
         "istft: the frame count must be static (its window envelope is a "
         "constant)");
  if (bins.is_static() && bins.value() != g.n_fft / 2 + 1)
    fail(ErrorKind::shape, "istft: expected n_fft / 2 + 1 = " + std::to_string(g.n_fft / 2 + 1) +
                               " frequencies, got " + bins.str());
  const int64_t frame_count = frame_dim.value();
  Graph graph = graph_of(spectrum);
  const std::vector<float> window = padded_window(options, g);
  Tensor windows = transpose(spectrum, swap_last_two(int(shape.size())));
  windows = irfft(windows, g.n_fft, {-1}, options.normalized ? FftNorm::ortho : FftNorm::backward);
  windows = windows * vector_constant(graph, window, {g.n_fft});
  Tensor signal = overlap_add(windows, g.hop);
  // Divide by the overlap-added squared window, where it is not (nearly) zero, as torch does.
  const int64_t total = (frame_count - 1) * g.hop + g.n_fft;
  std::vector<double> envelope(size_t(total), 0.0);
  for (int64_t f = 0; f < frame_count; ++f)
    for (int64_t k = 0; k < g.n_fft; ++k)
      envelope[size_t(f * g.hop + k)] += double(window[size_t(k)]) * window[size_t(k)];
  const int64_t start = options.center ? g.n_fft / 2 : 0;
  const int64_t end =
      length > 0 ? std::min(total, start + length) : (options.center ? total - g.n_fft / 2 : total);
  if (end <= start) fail(ErrorKind::shape, "istft: the frames cover no samples after trimming");
  std::vector<float> inverse(size_t(end - start));
  for (int64_t i = start; i < end; ++i)
    inverse[size_t(i - start)] =
        envelope[size_t(i)] > 1e-11 ? float(1.0 / envelope[size_t(i)]) : 0.f;
  const int last = int(signal.shape().size()) - 1;
  signal = slice(signal, {last}, {start}, {end});
  return signal * vector_constant(graph, inverse, {end - start});
}

std::vector<float> mel_filter_bank(const LogMelOptions& o) {
  const int64_t n_fft = o.stft.n_fft, bins = n_fft / 2 + 1;
  const double f_max = o.f_max > 0 ? o.f_max : o.sample_rate / 2;
  if (o.n_mels < 1 || o.sample_rate <= 0 || o.f_min < 0 || f_max <= o.f_min)
    fail(ErrorKind::value,
         "mel filter bank: needs n_mels >= 1, sample_rate > 0 and "
         "0 <= f_min < f_max");
  std::vector<double> mel_f(size_t(o.n_mels + 2));
  const double lo = hz_to_mel(o.f_min, o.scale), hi = hz_to_mel(f_max, o.scale);
  for (size_t i = 0; i < mel_f.size(); ++i)
    mel_f[i] = mel_to_hz(lo + (hi - lo) * double(i) / double(mel_f.size() - 1), o.scale);
  std::vector<float> weights(size_t(o.n_mels * bins), 0.f);
  for (int64_t m = 0; m < o.n_mels; ++m) {
    const double left = mel_f[size_t(m)], centre = mel_f[size_t(m + 1)],
                 right = mel_f[size_t(m + 2)];
    const double norm = o.slaney_norm ? 2.0 / (right - left) : 1.0;
    for (int64_t k = 0; k < bins; ++k) {
      const double f = o.sample_rate * double(k) / double(n_fft);  // numpy.fft.rfftfreq
      const double lower = (f - left) / (centre - left), upper = (right - f) / (right - centre);
      weights[size_t(m * bins + k)] = float(std::max(0.0, std::min(lower, upper)) * norm);
    }
  }
  return weights;
}

Tensor log_mel_spectrogram(const Tensor& x, const LogMelOptions& options) {
  if (options.power != 1.0 && options.power != 2.0)
    fail(ErrorKind::value, "log_mel_spectrogram: power must be 1 or 2");
  if (!(options.floor > 0)) fail(ErrorKind::value, "log_mel_spectrogram: floor must be > 0");
  Graph graph = graph_of(x);
  // The spectrum stays frame-major [..., F, bins]: the filter bank's matmul reads it
  // transposed (transpose_b), so the large complex spectrum is never transposed.
  Tensor spectrum = frame_major_stft(x, options.stft);
  Tensor magnitude;
  if (options.power == 2.0) {
    magnitude = abs_squared(spectrum);  // one pass over the complex spectrum
  } else {
    magnitude = abs(spectrum);
  }
  const int64_t bins = options.stft.n_fft / 2 + 1;
  Tensor filters = vector_constant(graph, mel_filter_bank(options), {options.n_mels, bins});
  Tensor mel = matmul(filters, magnitude, false, true);
  Tensor logged = log(maximum(mel, graph.constant(options.floor, DType::f32)));
  return options.log10 ? logged * (1.0 / std::log(10.0)) : logged;
}

}  // namespace loom
