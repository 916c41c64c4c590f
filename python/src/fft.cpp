// complex64 ops, Fourier transforms, frames and the spectral helpers of include/loom/fft.h as
// loom.<name>. Axes come as one int or a sequence; norms, windows, mel scales and pad modes
// by name.
#include "loom/fft.h"

#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <deque>

#include "bindings.h"
#include "loom/error.h"

namespace loom::python {

namespace {

FftNorm norm_from_name(const std::string& name) {
  if (name == "backward") return FftNorm::backward;
  if (name == "ortho") return FftNorm::ortho;
  if (name == "forward") return FftNorm::forward;
  fail(ErrorKind::value, "norm must be 'backward', 'ortho' or 'forward', got '" + name + "'");
}

WindowKind window_from_name(const std::string& name) {
  if (name == "hann" || name == "hann_periodic") return WindowKind::hann_periodic;
  if (name == "hann_symmetric") return WindowKind::hann_symmetric;
  if (name == "rectangular" || name == "ones") return WindowKind::rectangular;
  fail(ErrorKind::value,
       "window must be 'hann', 'hann_symmetric' or 'rectangular', got '" + name + "'");
}

MelScale scale_from_name(const std::string& name) {
  if (name == "slaney") return MelScale::slaney;
  if (name == "htk") return MelScale::htk;
  fail(ErrorKind::value, "mel_scale must be 'slaney' or 'htk', got '" + name + "'");
}

std::vector<int64_t> fft_axes(nb::handle obj) {
  if (obj.is_none()) fail(ErrorKind::value, "axes must be an int or a sequence of ints");
  return axes_from_py(obj);
}

StftOptions stft_options(int64_t n_fft, int64_t hop, int64_t win_length, const std::string& window,
                         bool center, const std::string& pad_mode, bool normalized) {
  StftOptions o;
  o.n_fft = n_fft;
  o.hop = hop;
  o.win_length = win_length;
  o.window = window_from_name(window);
  o.center = center;
  o.pad_mode = pad_mode;
  o.normalized = normalized;
  return o;
}

// Docstrings made at import; nanobind keeps the pointer, so they live here.
const char* keep(std::string doc) {
  static std::deque<std::string> docs;
  return docs.emplace_back(std::move(doc)).c_str();
}

const char* kNormDoc =
    "norm: 'backward' (the inverse scales by 1/n), 'ortho' (1/sqrt(n) both ways) or 'forward'\n"
    "(the forward transform scales by 1/n), as numpy.fft.";

}  // namespace

void bind_fft(nb::module_& m) {
  m.def("real", &real, nb::arg("x"), "The real part of a complex64 tensor (float32).");
  m.def("imag", &imag, nb::arg("x"), "The imaginary part of a complex64 tensor (float32).");
  m.def("abs_squared", &abs_squared, nb::arg("x"),
        "|x|^2 = real^2 + imag^2 of a complex64 tensor (float32), in one pass.");
  m.def("angle", &angle, nb::arg("x"), "atan2(imag, real) of a complex64 tensor (float32).");
  m.def("conj", &conj, nb::arg("x"), "The complex conjugate of a complex64 tensor.");
  m.def("complex", &complex, nb::arg("re"), nb::arg("im"),
        "re + 1j * im from two float32 tensors (broadcast) as complex64.");

  auto transform = [&m](const char* name,
                        Tensor (*fn)(const Tensor&, std::vector<int64_t>, FftNorm),
                        const char* doc) {
    m.def(
        name,
        [fn](const Tensor& x, nb::handle axes, const std::string& norm) {
          return fn(x, fft_axes(axes), norm_from_name(norm));
        },
        nb::arg("x"), nb::arg("axes").none() = nb::int_(-1), nb::arg("norm") = "backward",
        keep(std::string(doc) + "\naxes: one to three distinct axes (an int or a sequence).\n" +
             kNormDoc));
  };
  transform("fft", &fft, "Discrete Fourier transform of a complex64 tensor (numpy.fft.fftn).");
  transform("ifft", &ifft, "Inverse discrete Fourier transform (numpy.fft.ifftn).");
  transform("rfft", &rfft,
            "Fourier transform of a float32 signal: complex64, the last axis keeps n/2 + 1\n"
            "frequencies (numpy.fft.rfftn).");
  m.def(
      "irfft",
      [](const Tensor& x, int64_t n, nb::handle axes, const std::string& norm) {
        return irfft(x, n, fft_axes(axes), norm_from_name(norm));
      },
      nb::arg("x"), nb::arg("n") = 0, nb::arg("axes").none() = nb::int_(-1),
      nb::arg("norm") = "backward",
      keep(std::string("Real signal of a Hermitian half spectrum (numpy.fft.irfftn); n: samples\n"
                       "along the last axis (0: 2 * (m - 1)).\n") +
           kNormDoc));
  m.def("frames", &frames, nb::arg("x"), nb::arg("frame_length"), nb::arg("hop"),
        nb::arg("pad") = 0, nb::arg("pad_mode") = "constant",
        "Overlapping windows of the last axis: [..., T] -> [..., F, frame_length], frame f at\n"
        "f * hop of the signal padded by `pad` on each side ('constant' or 'reflect'). A copy.");
  m.def("overlap_add", &overlap_add, nb::arg("frames"), nb::arg("hop"),
        "Frames [..., F, L] summed at multiples of hop -> [..., (F - 1) * hop + L].");
  m.def(
      "window",
      [](const std::string& kind, int64_t length) {
        return window_values(window_from_name(kind), length);
      },
      nb::arg("kind"), nb::arg("length"),
      "A window's values as a list: 'hann' (periodic, torch.hann_window), 'hann_symmetric',\n"
      "'rectangular'.");
  m.def(
      "stft",
      [](const Tensor& x, int64_t n_fft, int64_t hop, int64_t win_length, const std::string& window,
         bool center, const std::string& pad_mode, bool normalized) {
        return stft(x, stft_options(n_fft, hop, win_length, window, center, pad_mode, normalized));
      },
      nb::arg("x"), nb::arg("n_fft"), nb::kw_only(), nb::arg("hop") = 0, nb::arg("win_length") = 0,
      nb::arg("window") = "hann", nb::arg("center") = true, nb::arg("pad_mode") = "reflect",
      nb::arg("normalized") = false,
      "Short-time Fourier transform, as torch.stft(return_complex=True): float32 [..., T] ->\n"
      "complex64 [..., n_fft/2 + 1, frames]. hop 0: n_fft // 4; win_length 0: n_fft.");
  m.def(
      "istft",
      [](const Tensor& x, int64_t n_fft, int64_t hop, int64_t win_length, const std::string& window,
         bool center, bool normalized, int64_t length) {
        return istft(x, stft_options(n_fft, hop, win_length, window, center, "reflect", normalized),
                     length);
      },
      nb::arg("x"), nb::arg("n_fft"), nb::kw_only(), nb::arg("hop") = 0, nb::arg("win_length") = 0,
      nb::arg("window") = "hann", nb::arg("center") = true, nb::arg("normalized") = false,
      nb::arg("length") = 0,
      "Inverse STFT, as torch.istft: complex64 [..., n_fft/2 + 1, frames] -> float32\n"
      "[..., length] (0: what the frames cover less the centre padding).");
  auto mel_options = [](double sample_rate, int64_t n_fft, int64_t n_mels, double f_min,
                        double f_max, const std::string& mel_scale, bool slaney_norm) {
    LogMelOptions o;
    o.sample_rate = sample_rate;
    o.stft.n_fft = n_fft;
    o.n_mels = n_mels;
    o.f_min = f_min;
    o.f_max = f_max;
    o.scale = scale_from_name(mel_scale);
    o.slaney_norm = slaney_norm;
    return o;
  };
  m.def(
      "mel_filter_bank",
      [mel_options](double sample_rate, int64_t n_fft, int64_t n_mels, double f_min, double f_max,
                    const std::string& mel_scale, bool slaney_norm) {
        std::vector<float> w = mel_filter_bank(
            mel_options(sample_rate, n_fft, n_mels, f_min, f_max, mel_scale, slaney_norm));
        return TensorData::from_vector(w, {n_mels, n_fft / 2 + 1});
      },
      nb::arg("sample_rate"), nb::arg("n_fft"), nb::arg("n_mels"), nb::kw_only(),
      nb::arg("f_min") = 0.0, nb::arg("f_max") = 0.0, nb::arg("mel_scale") = "slaney",
      nb::arg("slaney_norm") = true,
      "The mel filter bank [n_mels, n_fft/2 + 1] as a TensorData (librosa.filters.mel;\n"
      "f_max 0: sample_rate / 2).");
  m.def(
      "log_mel_spectrogram",
      [mel_options](const Tensor& x, double sample_rate, int64_t n_fft, int64_t hop, int64_t n_mels,
                    double f_min, double f_max, const std::string& mel_scale, bool slaney_norm,
                    double power, double floor, bool log10, const std::string& window, bool center,
                    const std::string& pad_mode) {
        LogMelOptions o =
            mel_options(sample_rate, n_fft, n_mels, f_min, f_max, mel_scale, slaney_norm);
        o.stft = stft_options(n_fft, hop, 0, window, center, pad_mode, false);
        o.power = power;
        o.floor = floor;
        o.log10 = log10;
        return log_mel_spectrogram(x, o);
      },
      nb::arg("x"), nb::kw_only(), nb::arg("sample_rate") = 16000.0, nb::arg("n_fft") = 400,
      nb::arg("hop") = 160, nb::arg("n_mels") = 80, nb::arg("f_min") = 0.0, nb::arg("f_max") = 0.0,
      nb::arg("mel_scale") = "slaney", nb::arg("slaney_norm") = true, nb::arg("power") = 2.0,
      nb::arg("floor") = 1e-10, nb::arg("log10") = true, nb::arg("window") = "hann",
      nb::arg("center") = true, nb::arg("pad_mode") = "reflect",
      "log(max(mel_filters @ |stft(x)|^power, floor)): float32 [..., T] -> [..., n_mels,\n"
      "frames]. The defaults are Whisper's front end before its clamp and rescale.");
}

}  // namespace loom::python
