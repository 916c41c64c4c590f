// complex64 values, Fourier transforms, and the spectral front ends built on them (STFT,
// inverse STFT, log-mel spectrogram). docs/fft.md describes them with examples.
#pragma once

#include <complex>
#include <optional>
#include <string>
#include <vector>

#include "loom/graph.h"
#include "loom/tensor_data.h"

namespace loom {

// c64 is stored as NumPy's complex64 (real, then imaginary f32), so TensorData::from_vector
// and to_vector take std::complex<float>. TensorData::from_floats(values, c64, shape) gives
// zero imaginary parts, and to_floats() of c64 data gives 2 * numel floats (the parts
// interleaved).
template <>
constexpr DType dtype_of<std::complex<float>>() {
  return DType::c64;
}

// ---- complex64 ----------------------------------------------------------------------
// add, sub, mul and div (ops.h) take two c64 operands too, with broadcasting; abs() of a c64
// tensor builds "complex_abs".
Tensor real(const Tensor& x);         // "real": c64 -> f32
Tensor imag(const Tensor& x);         // "imag": c64 -> f32
Tensor angle(const Tensor& x);        // "angle": c64 -> f32, atan2(im, re)
Tensor abs_squared(const Tensor& x);  // "complex_abs2": c64 -> f32, re^2 + im^2 (one pass)
Tensor conj(const Tensor& x);         // "conj": c64 -> c64
Tensor complex(const Tensor& re, const Tensor& im);  // "complex": f32, f32 (broadcast) -> c64

// ---- Fourier transforms ("fft", "ifft", "rfft", "irfft") ----------------------------
// Over one, two or three distinct axes (negative ones count from the end). norm as numpy.fft:
// "backward" (the inverse scales by 1/n), "ortho" (both by 1/sqrt(n)), "forward" (the forward
// transform scales by 1/n). n is the product of the transformed lengths (of the real signal
// for rfft and irfft).
enum class FftNorm { backward, ortho, forward };
const char* fft_norm_name(FftNorm norm);

Tensor fft(const Tensor& x, std::vector<int64_t> axes = {-1}, FftNorm norm = FftNorm::backward);
Tensor ifft(const Tensor& x, std::vector<int64_t> axes = {-1}, FftNorm norm = FftNorm::backward);
// f32 -> c64; the last of `axes` keeps n/2 + 1 frequencies (the Hermitian half).
Tensor rfft(const Tensor& x, std::vector<int64_t> axes = {-1}, FftNorm norm = FftNorm::backward);
// c64 -> f32; `n` is the real length along the last of `axes` (0: 2 * (m - 1) for m input
// frequencies). Input frequencies past n/2 + 1 are ignored, missing ones are zero, and the
// imaginary parts of the zero (and, for even n, the n/2) frequency are ignored, as numpy does.
Tensor irfft(const Tensor& x, int64_t n = 0, std::vector<int64_t> axes = {-1},
             FftNorm norm = FftNorm::backward);

// ---- frames and overlap-add ("frames", "overlap_add") ------------------------------
// Overlapping windows of the last axis: x [..., T] -> [..., F, frame_length] with frame f
// starting at f * hop of the signal padded by `pad` samples on each side ("constant": zeros;
// "reflect": mirrored without repeating the edge, which needs pad < T);
// F = 1 + (T + 2 pad - frame_length) / hop. Without padding the frames are a view of x
// (strides hop and 1, no copy) that rfft reads as it is; with padding they are a copy.
Tensor frames(const Tensor& x, int64_t frame_length, int64_t hop, int64_t pad = 0,
              const std::string& pad_mode = "constant");
// frames(...) * window in one pass (the op `frames` with its optional window input): f32 x,
// window f32 [frame_length]. The STFT's framing; the unwindowed frames are never written.
Tensor windowed_frames(const Tensor& x, int64_t frame_length, int64_t hop, int64_t pad,
                       const std::string& pad_mode, const Tensor& window);
// The inverse layout: frames [..., F, L] summed at f * hop -> [..., (F - 1) * hop + L].
Tensor overlap_add(const Tensor& frames, int64_t hop);

// ---- STFT and log-mel ----------------------------------------------------------------
enum class WindowKind { hann_periodic, hann_symmetric, rectangular };
// The window's values (length `length`), as torch.hann_window(periodic=...) gives them.
std::vector<float> window_values(WindowKind kind, int64_t length);

struct StftOptions {
  int64_t n_fft = 400;
  int64_t hop = 0;         // 0: n_fft / 4
  int64_t win_length = 0;  // 0: n_fft; a shorter window is zero-padded to n_fft, centred
  WindowKind window = WindowKind::hann_periodic;
  bool center = true;  // pad n_fft / 2 on both sides so that frame f is centred at f * hop
  std::string pad_mode = "reflect";  // or "constant"
  bool normalized = false;           // scale by 1 / sqrt(n_fft), as torch's normalized=True
};
// f32 [..., T] -> c64 [..., n_fft / 2 + 1, F], as torch.stft(return_complex=True,
// onesided=True).
Tensor stft(const Tensor& x, const StftOptions& options = {});
// c64 [..., n_fft / 2 + 1, F] -> f32 [..., length] (length 0: as many samples as the frames
// cover, less the centre padding), as torch.istft. Needs a static frame count.
Tensor istft(const Tensor& spectrum, const StftOptions& options = {}, int64_t length = 0);

enum class MelScale { slaney, htk };
struct LogMelOptions {
  StftOptions stft{};
  double sample_rate = 16000;
  int64_t n_mels = 80;
  double f_min = 0;
  double f_max = 0;  // 0: sample_rate / 2
  MelScale scale = MelScale::slaney;
  bool slaney_norm = true;  // divide each filter by its bandwidth in Hz (librosa's norm="slaney")
  double power = 2.0;       // 1: magnitudes, 2: power
  double floor = 1e-10;     // log(max(mel, floor))
  bool log10 = true;        // log10 (Whisper) or the natural log
};
// The mel filter bank [n_mels, n_fft / 2 + 1], as librosa.filters.mel (htk = scale htk).
std::vector<float> mel_filter_bank(const LogMelOptions& options);
// f32 [..., T] -> f32 [..., n_mels, F]: log(max(mel_filters @ |stft|^power, floor)).
Tensor log_mel_spectrogram(const Tensor& x, const LogMelOptions& options = {});

}  // namespace loom
