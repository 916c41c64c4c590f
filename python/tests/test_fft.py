"""Fourier transforms against numpy.fft, complex64 ops against NumPy's complex arithmetic,
and the STFT, inverse STFT and log-mel spectrogram against NumPy references written here
(torch.stft's and librosa's definitions). GPU versions (marked cuda) compare the CUDA
backend with torch.fft and with the CPU."""

import numpy as np
import pytest
from conftest import F32_EPS, accumulation_tolerance, assert_close, run_graph, torch_or_none

import loom

# Sizes: primes, products of small primes, powers of two; odd axes; batches; 1-3 axes.
CASES = [
    ((17,), (-1,)),
    ((97,), (0,)),
    ((1000,), (0,)),
    ((1024,), (-1,)),
    ((4, 30), (-1,)),
    ((5, 7), (0,)),
    ((3, 12, 5), (1,)),
    ((6, 10, 3), (0, 1)),
    ((3, 4, 5), (0, 2)),
    ((2, 8, 9, 10), (1, 2, 3)),
    ((2, 3, 5, 7), (3, 1)),
]
NORMS = ["backward", "ortho", "forward"]


def complex_array(rng, shape):
    return (rng.uniform(-1, 1, shape) + 1j * rng.uniform(-1, 1, shape)).astype(np.complex64)


def points_of(shape, axes):
    return int(np.prod([shape[a] for a in axes]))


def scale_of(norm, inverse, points):
    if norm == "ortho":
        return 1 / np.sqrt(points)
    return 1 / points if (norm == "forward") != inverse else 1.0


def transform_tolerance(points, term):
    # Each output sums `points` terms of size up to `term`: the f32 accumulation bound.
    return accumulation_tolerance(loom.float32, points, term)


def assert_complex_close(got, want, tolerance, what):
    assert got.dtype == np.complex64, what
    assert_close(got.real, want.real, what=what + " (real)", tolerance=tolerance)
    assert_close(got.imag, want.imag, what=what + " (imag)", tolerance=tolerance)


@pytest.mark.parametrize("shape,axes", CASES)
@pytest.mark.parametrize("norm", NORMS)
def test_fft_and_ifft_match_numpy(rng, shape, axes, norm):
    x = complex_array(rng, shape)
    g = loom.Graph()
    p = g.placeholder("x", shape, loom.complex64)
    forward, inverse = run_graph(g, [loom.fft(p, axes, norm), loom.ifft(p, axes, norm)], {"x": x})
    points = points_of(shape, axes)
    x64 = x.astype(np.complex128)
    want_f = np.fft.fftn(x64, axes=axes, norm=norm)
    want_i = np.fft.ifftn(x64, axes=axes, norm=norm)
    assert_complex_close(forward, want_f, transform_tolerance(points, 1.5 * scale_of(norm, False, points)), "fft")
    assert_complex_close(inverse, want_i, transform_tolerance(points, 1.5 * scale_of(norm, True, points)), "ifft")


@pytest.mark.parametrize("shape,axes", CASES)
@pytest.mark.parametrize("norm", NORMS)
def test_rfft_and_irfft_match_numpy(rng, shape, axes, norm):
    x = rng.uniform(-1, 1, shape).astype(np.float32)
    g = loom.Graph()
    p = g.placeholder("x", shape, loom.float32)
    spectrum = loom.rfft(p, axes, norm)
    n = shape[axes[-1]]
    back = loom.irfft(spectrum, n, axes, norm)
    got_spec, got_back = run_graph(g, [spectrum, back], {"x": x})
    points = points_of(shape, axes)
    want = np.fft.rfftn(x.astype(np.float64), axes=axes, norm=norm)
    assert got_spec.shape == want.shape
    assert_complex_close(got_spec, want, transform_tolerance(points, scale_of(norm, False, points)), "rfft")
    assert_close(got_back, x, what="irfft(rfft(x))", tolerance=transform_tolerance(4 * points, 1.0))
    # irfft of a fresh half spectrum, with n odd, even, and past what the spectrum covers.
    half_shape = list(shape)
    half_shape[axes[-1]] = n // 2 + 1
    spec = complex_array(rng, tuple(half_shape))
    for out_n in (n, n + 1, n + 4):
        g = loom.Graph()
        q = g.placeholder("s", tuple(half_shape), loom.complex64)
        got = run_graph(g, loom.irfft(q, out_n, axes, norm), {"s": spec})
        s = [shape[a] for a in axes[:-1]] + [out_n]
        want = np.fft.irfftn(spec.astype(np.complex128), s=s, axes=axes, norm=norm)
        out_points = int(np.prod(s))
        assert_close(got, want, what=f"irfft n={out_n}",
                     tolerance=transform_tolerance(2 * out_points, 3 * scale_of(norm, True, out_points)))


def test_irfft_default_length_and_parseval(rng):
    spec = complex_array(rng, (3, 9))
    g = loom.Graph()
    p = g.placeholder("s", (3, 9), loom.complex64)
    y = loom.irfft(p)
    assert y.shape == (3, 16)
    got = run_graph(g, y, {"s": spec})
    assert_close(got, np.fft.irfft(spec.astype(np.complex128)), tolerance=transform_tolerance(32, 3 / 16))
    # Parseval: sum |x|^2 == sum |X|^2 with norm="ortho".
    x = complex_array(rng, (7, 64))
    g = loom.Graph()
    p = g.placeholder("x", (7, 64), loom.complex64)
    s = loom.fft(p, (0, 1), "ortho")
    energy = loom.sum(loom.real(s) * loom.real(s) + loom.imag(s) * loom.imag(s))
    got = run_graph(g, energy, {"x": x})
    assert_close(got, np.sum(np.abs(x.astype(np.complex128)) ** 2),
                 tolerance=accumulation_tolerance(loom.float32, 2 * x.size))


def test_complex_ops_match_numpy(rng):
    a, b = complex_array(rng, (4, 1, 6)), complex_array(rng, (5, 1))
    re, im = rng.uniform(-2, 2, (3, 1)).astype(np.float32), rng.uniform(-2, 2, (7,)).astype(np.float32)
    g = loom.Graph()
    pa, pb = g.placeholder("a", a.shape, loom.complex64), g.placeholder("b", b.shape, loom.complex64)
    pr, pi = g.placeholder("re", re.shape), g.placeholder("im", im.shape)
    outs = run_graph(g, [pa + pb, pa - pb, pa * pb, pa / pb, loom.real(pa), loom.imag(pa),
                         loom.abs(pa), loom.angle(pa), loom.conj(pa), loom.complex(pr, pi),
                         loom.abs_squared(pa)],
                     {"a": a, "b": b, "re": re, "im": im})
    a64, b64 = a.astype(np.complex128), b.astype(np.complex128)
    # One to a few f32 operations on operands below 1.5 in magnitude.
    tol = (1e-5, 16 * F32_EPS)
    for got, want, what in [(outs[0], a64 + b64, "add"), (outs[1], a64 - b64, "sub"),
                            (outs[2], a64 * b64, "mul"), (outs[8], np.conj(a64), "conj")]:
        assert_complex_close(got, want, tol, what)
    # Division by values near zero magnifies: the bound is relative to |a| / |b|.
    quot = outs[3].astype(np.complex128)
    want = a64 / b64
    assert np.all(np.abs(quot - want) <= 16 * F32_EPS * np.abs(want) + 1e-7), "div"
    assert_close(outs[4], a.real, what="real", tolerance=(0, 0))
    assert_close(outs[5], a.imag, what="imag", tolerance=(0, 0))
    assert_close(outs[6], np.abs(a64), what="abs")
    assert_close(outs[7], np.angle(a64), what="angle", tolerance=(1e-6, 1e-6))
    assert_complex_close(outs[9], re + 1j * im, (0, 0), "complex")
    assert outs[6].dtype == np.float32
    # Two rounded products and a rounded sum of non-negative terms: within 2 f32 ulp.
    assert_close(outs[10], np.abs(a64) ** 2, what="abs_squared", tolerance=(2.5e-7, 0))
    assert outs[10].dtype == np.float32


def test_complex_numpy_round_trip(rng):
    x = complex_array(rng, (3, 5))
    data = loom.tensor_data(x)
    assert data.dtype == loom.complex64
    np.testing.assert_array_equal(data.numpy(), x)
    g = loom.Graph()
    p = g.placeholder("x", (3, 5), loom.complex64)
    np.testing.assert_array_equal(run_graph(g, loom.conj(loom.conj(p)), {"x": x}), x)


def test_errors():
    g = loom.Graph()
    c = g.placeholder("c", (4, 6), loom.complex64)
    r = g.placeholder("r", (4, 6))
    with pytest.raises(loom.DTypeError):
        loom.fft(r)
    with pytest.raises(loom.ShapeError):
        loom.fft(c, (2,))
    with pytest.raises(loom.InvalidValueError):
        loom.fft(c, (0,), "half")
    with pytest.raises(loom.InvalidValueError):
        loom.fft(c, ())
    with pytest.raises(loom.ShapeError):
        loom.frames(r, 7, 1)
    with pytest.raises(loom.InvalidValueError):
        loom.stft(r, 4, window="kaiser")


# ---- STFT and log-mel: NumPy references of torch.stft / torch.istft and librosa ---------

def hann(length, periodic=True):
    if length == 1:
        return np.ones(1)
    denom = length if periodic else length - 1
    return 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(length) / denom)


def stft_reference(x, n_fft, hop, win_length=None, periodic=True, center=True, pad_mode="reflect"):
    win_length = win_length or n_fft
    window = np.zeros(n_fft)
    left = (n_fft - win_length) // 2
    window[left:left + win_length] = hann(win_length, periodic)
    x = x.astype(np.float64)
    if center:
        pad = [(0, 0)] * (x.ndim - 1) + [(n_fft // 2, n_fft // 2)]
        x = np.pad(x, pad, mode=pad_mode)
    count = 1 + (x.shape[-1] - n_fft) // hop
    frames = np.stack([x[..., f * hop:f * hop + n_fft] for f in range(count)], axis=-2)
    return np.swapaxes(np.fft.rfft(frames * window, axis=-1), -1, -2)


def istft_reference(spec, n_fft, hop, length):
    window = hann(n_fft)
    frames = np.fft.irfft(np.swapaxes(spec, -1, -2), n=n_fft, axis=-1) * window
    count = frames.shape[-2]
    total = (count - 1) * hop + n_fft
    y = np.zeros(frames.shape[:-2] + (total,))
    env = np.zeros(total)
    for f in range(count):
        y[..., f * hop:f * hop + n_fft] += frames[..., f, :]
        env[f * hop:f * hop + n_fft] += window ** 2
    start = n_fft // 2
    return (y / np.where(env > 1e-11, env, 1.0))[..., start:start + length]


def hz_to_mel(f, htk):
    f = np.asarray(f, dtype=np.float64)
    if htk:
        return 2595.0 * np.log10(1.0 + f / 700.0)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep, f / f_sp)


def mel_to_hz(m, htk):
    m = np.asarray(m, dtype=np.float64)
    if htk:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


def mel_filters_reference(sr, n_fft, n_mels, htk, norm=True, f_min=0.0, f_max=None):
    """librosa.filters.mel, written out."""
    f_max = f_max or sr / 2
    fft_freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(f_min, htk), hz_to_mel(f_max, htk), n_mels + 2), htk)
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fft_freqs[None, :]
    weights = np.zeros((n_mels, len(fft_freqs)))
    for i in range(n_mels):
        lower = -ramps[i] / fdiff[i]
        upper = ramps[i + 2] / fdiff[i + 1]
        weights[i] = np.maximum(0, np.minimum(lower, upper))
    if norm:
        weights *= (2.0 / (mel_f[2:n_mels + 2] - mel_f[:n_mels]))[:, None]
    return weights


@pytest.mark.parametrize("n_fft,hop,win_length,pad_mode", [
    (400, 160, None, "reflect"), (64, 16, None, "constant"), (63, 10, 50, "reflect"), (16, 16, None, "reflect")])
def test_stft_matches_numpy_reference(rng, n_fft, hop, win_length, pad_mode):
    x = rng.uniform(-1, 1, (3, 2000)).astype(np.float32)
    g = loom.Graph()
    p = g.placeholder("x", x.shape)
    y = loom.stft(p, n_fft, hop=hop, win_length=win_length or 0, pad_mode=pad_mode)
    got = run_graph(g, y, {"x": x})
    want = stft_reference(x, n_fft, hop, win_length, pad_mode=pad_mode)
    assert got.shape == want.shape
    # A window-weighted sum of n_fft samples below 1 in magnitude.
    assert_complex_close(got, want, transform_tolerance(n_fft, 1.0), "stft")


def test_stft_symmetric_window_and_no_centre(rng):
    x = rng.uniform(-1, 1, (500,)).astype(np.float32)
    g = loom.Graph()
    p = g.placeholder("x", x.shape)
    got = run_graph(g, loom.stft(p, 32, hop=8, window="hann_symmetric", center=False), {"x": x})
    want = stft_reference(x, 32, 8, periodic=False, center=False)
    assert_complex_close(got, want, transform_tolerance(32, 1.0), "stft symmetric")


def test_istft_inverts_stft(rng):
    x = rng.uniform(-1, 1, (2, 1600)).astype(np.float32)
    g = loom.Graph()
    p = g.placeholder("x", x.shape)
    spec = loom.stft(p, 128, hop=32)
    back = loom.istft(spec, 128, hop=32, length=1600)
    got_spec, got = run_graph(g, [spec, back], {"x": x})
    assert_close(got, istft_reference(got_spec.astype(np.complex128), 128, 32, 1600),
                 tolerance=transform_tolerance(2 * 128, 1.0), what="istft vs reference")
    assert_close(got, x, tolerance=transform_tolerance(4 * 128, 1.0), what="istft(stft(x))")


@pytest.mark.parametrize("htk", [False, True])
def test_mel_filter_bank_matches_librosa_definition(htk):
    got = loom.mel_filter_bank(16000, 400, 80, mel_scale="htk" if htk else "slaney").numpy()
    want = mel_filters_reference(16000, 400, 80, htk)
    assert_close(got, want, tolerance=(4 * F32_EPS, 1e-9))
    got = loom.mel_filter_bank(22050, 512, 40, f_min=30, f_max=8000, slaney_norm=False,
                               mel_scale="htk" if htk else "slaney").numpy()
    assert_close(got, mel_filters_reference(22050, 512, 40, htk, norm=False, f_min=30, f_max=8000),
                 tolerance=(4 * F32_EPS, 1e-9))


@pytest.mark.parametrize("htk", [False, True])
def test_log_mel_spectrogram_matches_numpy_reference(rng, htk):
    # Two seconds of a chirp plus noise at 16 kHz, Whisper's settings.
    t = np.arange(32000) / 16000
    x = (0.5 * np.sin(2 * np.pi * (200 + 900 * t) * t) + 0.05 * rng.standard_normal((2, 32000)))
    x = x.astype(np.float32)
    g = loom.Graph()
    p = g.placeholder("x", x.shape)
    got = run_graph(g, loom.log_mel_spectrogram(p, mel_scale="htk" if htk else "slaney"), {"x": x})
    spec = stft_reference(x, 400, 160)
    filters = mel_filters_reference(16000, 400, 80, htk)
    mel = filters @ (np.abs(spec) ** 2)
    want = np.log10(np.maximum(mel, 1e-10))
    assert got.shape == want.shape == (2, 80, 201)
    # Per element: each STFT bin sums 400 terms |x w| <= max|x| in f32, so it is off by at most
    # delta = rtol |X| + atol (transform_tolerance); its power by 2 |X| delta + delta^2; a mel
    # band by the filter-weighted sum of those plus the f32 rounding of its 201-term sum; and
    # log10 turns that into |dm| / (m ln 10) (m floored at 1e-10), doubled for the log's
    # curvature, plus the f32 rounding of the result. A band of low power next to loud bins
    # gets a wider bound than the loud ones, as it should.
    rtol, atol = transform_tolerance(400, float(np.abs(x).max()))
    delta = rtol * np.abs(spec) + atol
    power_error = 2 * np.abs(spec) * delta + delta ** 2
    mel_error = filters @ power_error + 4 * np.sqrt(201) * F32_EPS * mel
    bound = 2 * mel_error / (np.maximum(mel, 1e-10) * np.log(10)) + 4 * F32_EPS * np.abs(want)
    outside = np.abs(got - want) > bound
    assert not outside.any(), (f"log-mel: {outside.sum()} of {outside.size} outside their bound; "
                               f"worst excess {(np.abs(got - want) - bound).max():.3g}")


# ---- CUDA -------------------------------------------------------------------------------

torch = torch_or_none()


@pytest.mark.cuda
@pytest.mark.parametrize("shape,axes", CASES)
def test_cuda_transforms_match_torch_fft(shape, axes):
    gen = torch.Generator(device="cuda").manual_seed(len(shape) * 100 + sum(shape))
    x = torch.randn(*shape, device="cuda", generator=gen)
    xc = torch.complex(x, torch.randn(*shape, device="cuda", generator=gen))
    n = shape[axes[-1]]
    g = loom.Graph()
    pr, pc = g.placeholder("x", shape), g.placeholder("xc", shape, loom.complex64)
    outs = [loom.fft(pc, axes), loom.ifft(pc, axes, "ortho"), loom.rfft(pr, axes, "forward"),
            loom.irfft(loom.rfft(pr, axes), n, axes)]
    exe = loom.compile(g, outputs=outs, device="cuda")
    points = points_of(shape, axes)
    for run in range(3):  # eager, captured, replayed
        got = exe.run({"x": x, "xc": xc}, output="torch")
        want = [torch.fft.fftn(xc, dim=axes), torch.fft.ifftn(xc, dim=axes, norm="ortho"),
                torch.fft.rfftn(x, dim=axes, norm="forward"), x]
        for i, (a, b) in enumerate(zip(got, want)):
            a, b = a.cpu().numpy(), b.cpu().numpy()
            tol = transform_tolerance(4 * points, 5.0)
            if np.iscomplexobj(b):
                assert_complex_close(a, b.astype(np.complex128), tol, f"output {i} run {run}")
            else:
                assert_close(a, b, tolerance=tol, what=f"output {i} run {run}")


@pytest.mark.cuda
def test_cuda_stft_and_log_mel_match_cpu():
    x = np.random.default_rng(5).uniform(-1, 1, (4, 16000)).astype(np.float32)
    outs = {}
    for device in ("cpu", "cuda"):
        g = loom.Graph()
        p = g.placeholder("x", x.shape)
        exe = loom.compile(g, outputs=[loom.stft(p, 400, hop=160), loom.log_mel_spectrogram(p),
                                       loom.istft(loom.stft(p, 400, hop=100), 400, hop=100, length=16000)],
                           device=device)
        for _ in range(3):
            outs[device] = exe.run({"x": x})
    assert_complex_close(outs["cuda"][0], outs["cpu"][0].astype(np.complex128),
                         transform_tolerance(400, 1.0), "stft")
    rtol_power = 2 * transform_tolerance(400, 1.0)[0]
    assert_close(outs["cuda"][1], outs["cpu"][1], tolerance=(0, 8 * rtol_power / np.log(10) + 1e-5))
    assert_close(outs["cuda"][2], x, tolerance=transform_tolerance(4 * 400, 1.0))
