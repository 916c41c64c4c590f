"""CPU Fourier transforms beside numpy.fft in the same process: rfft of 2^20 f32, the STFT of
30 s at 16 kHz (n_fft 400, hop 160, periodic Hann, centre reflect padding) in torch's layout
and frame-major, and the log-mel spectrogram of the same. Medians of `--repeat` calls of
exe.run with a NumPy feed. Run: PYTHONPATH=build/python python3 bench/cpu_fft_numpy.py"""
import argparse
import statistics
import time

import numpy as np

import loom


def median_ms(fn, repeat):
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def numpy_stft(x, window, n_fft, hop):
    """The STFT as NumPy users write it: reflect padding, frames as a strided view, the window
    multiply and pocketfft's rfft of each frame; .T gives torch's [freq, frames] as a view."""
    padded = np.pad(x, n_fft // 2, mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop]
    return np.fft.rfft(frames * window, axis=-1).T


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    rows = []

    x = rng.standard_normal(1 << 20).astype(np.float32)
    g = loom.Graph()
    p = g.placeholder("x", x.shape)
    exe = loom.compile(g, outputs=[loom.rfft(p)])
    rows.append(("rfft of 2^20 f32", median_ms(lambda: exe.run({"x": x}), args.repeat),
                 median_ms(lambda: np.fft.rfft(x), args.repeat)))

    audio = rng.standard_normal(30 * 16000).astype(np.float32)
    window = np.asarray(loom.window("hann", 400), dtype=np.float32)
    g = loom.Graph()
    p = g.placeholder("x", audio.shape)
    stft_exe = loom.compile(g, outputs=[loom.stft(p, 400, hop=160)])
    mel_exe = loom.compile(g, outputs=[loom.log_mel_spectrogram(p)])
    got = stft_exe.run({"x": audio})
    got = got[0] if isinstance(got, (list, tuple)) else got
    want = numpy_stft(audio.astype(np.float64), window.astype(np.float64), 400, 160)
    err = np.abs(np.asarray(got) - want).max() / np.abs(want).max()
    rows.append(("STFT of 30 s at 16 kHz, n_fft 400, hop 160 (torch layout)",
                 median_ms(lambda: stft_exe.run({"x": audio}), args.repeat),
                 median_ms(lambda: numpy_stft(audio, window, 400, 160), args.repeat)))
    rows.append(("log-mel (80 mels) of the same",
                 median_ms(lambda: mel_exe.run({"x": audio}), args.repeat), float("nan")))
    print(f"STFT max error vs float64 NumPy, relative to the largest magnitude: {err:.2e}")
    print("| transform | Loom ms | numpy.fft ms | NumPy / Loom |")
    print("|---|---:|---:|---:|")
    for name, ours, theirs in rows:
        print(f"| {name} | {ours:.1f} | {theirs:.1f} | {theirs / ours:.2f} |")


if __name__ == "__main__":
    main()
