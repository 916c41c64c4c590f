"""Shared helpers for the Loom Python tests: fresh random inputs, tolerances by dtype,
one-call compile-and-run, and the `cuda` marker's skip rule."""

import os

import ml_dtypes
import numpy as np
import pytest

import loom

# Every float dtype a test runs in, with the NumPy dtype its inputs are made in.
FLOAT_DTYPES = [loom.float32, loom.float16, loom.bfloat16]

# Elementwise (rtol, atol) per dtype, torch.testing.assert_close's defaults: a result rounded
# once to the dtype is within half an epsilon of the exact one. The same figures as
# tests/test_util.h.
TOLERANCE = {
    loom.float32: (1.3e-6, 1e-5),
    loom.float16: (1e-3, 1e-5),
    loom.bfloat16: (1.6e-2, 1e-5),
}
F32_EPS = float(np.finfo(np.float32).eps)


def accumulation_tolerance(dtype, terms, term=1.0):
    """(rtol, atol) for a sum of `terms` products done in f32 and rounded to `dtype`: partial
    sums of random-sign terms (magnitude `term`) stay near sqrt(k) * term and their rounding
    errors add like a random walk to about terms * eps * term / 2 (absolute: cancellation can
    make the result small); terms of one sign give about sqrt(terms) * eps / 3 relative. Both
    allowed four times over, on top of the dtype's own rounding."""
    rtol, atol = TOLERANCE[loom.dtype(dtype)]
    k = max(terms, 1)
    return rtol + 4 * np.sqrt(k) * F32_EPS / 3, atol + 4 * k * F32_EPS * term / 2


def normalized_tolerance(dtype, terms):
    """(rtol, atol) for results normalized by a sum of `terms` f32 values (softmax,
    log_softmax, layer_norm, rms_norm): each element carries the sum's relative error, about
    sqrt(terms) * eps / 3 (rtol), absolute where a logarithm or mean is subtracted (atol);
    four times over, on top of the dtype's own rounding. As tests/test_util.h."""
    rtol, atol = TOLERANCE[loom.dtype(dtype)]
    growth = 4 * np.sqrt(max(terms, 1)) * F32_EPS
    return rtol + growth / 3, atol + growth


def numpy_dtype(dtype):
    return loom.to_numpy_dtype(dtype)


@pytest.fixture
def rng(request):
    """A generator seeded afresh for every test (the seed is printed when a test fails)."""
    seed = int.from_bytes(os.urandom(4), "little")
    print(f"random seed for {request.node.name}: {seed}")
    return np.random.default_rng(seed)


def random_array(rng, shape, dtype=loom.float32, low=-2.0, high=2.0):
    """Uniform values rounded to `dtype`; integer dtypes get integers in [low, high)."""
    dtype = loom.dtype(dtype)
    if dtype.is_floating_point:
        return rng.uniform(low, high, size=shape).astype(np.float32).astype(numpy_dtype(dtype))
    if dtype == loom.bool_:
        return rng.integers(0, 2, size=shape).astype(np.bool_)
    return rng.integers(int(low), int(high), size=shape).astype(numpy_dtype(dtype))


def as_f64(array):
    return np.asarray(array).astype(np.float64)


def assert_close(got, want, dtype=loom.float32, what="", tolerance=None):
    """Every element within |got - want| <= atol + rtol * |want| (`tolerance` = (rtol, atol),
    else the dtype's default); NaN only where NaN is expected. Other dtypes: exactly equal."""
    got = as_f64(got)
    want = as_f64(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    if tolerance is None:
        tolerance = TOLERANCE.get(loom.dtype(dtype), (0.0, 0.0))
    rtol, atol = tolerance
    nan_got, nan_want = np.isnan(got), np.isnan(want)
    with np.errstate(invalid="ignore"):
        allowed = atol + rtol * np.abs(want)
        diff = np.abs(got - want)
        bad = ~((diff <= allowed) | (got == want)) | (nan_got != nan_want)
        # An infinity matches only itself (atol + rtol * inf would let anything through).
        bad |= (np.isinf(got) | np.isinf(want)) & (got != want)
    bad &= ~(nan_got & nan_want)
    if bad.any():
        with np.errstate(invalid="ignore", divide="ignore"):
            excess = np.where(bad, np.nan_to_num(diff / allowed, nan=np.inf, posinf=np.inf), -1)
        worst = np.unravel_index(int(np.argmax(excess)), want.shape)
        raise AssertionError(
            f"{what}: {int(bad.sum())} of {want.size} elements outside rtol {rtol:g} "
            f"atol {atol:g}; worst at {tuple(int(i) for i in worst)}: got {got[worst]!r}, "
            f"want {want[worst]!r}")


def run_graph(g, outputs, feeds=None, **compile_options):
    """Compiles `g` for `outputs` and runs it once on `feeds`; returns the NumPy outputs."""
    single = isinstance(outputs, loom.Tensor)
    exe = loom.compile(g, outputs=[outputs] if single else outputs, **compile_options)
    results = exe.run(feeds or {})
    return results[0] if single else results


def torch_or_none():
    try:
        import torch
    except ImportError:
        return None
    return torch


def pytest_collection_modifyitems(config, items):
    torch = torch_or_none()
    reason = None
    if torch is None:
        reason = "PyTorch is not installed"
    elif not torch.cuda.is_available():
        reason = "PyTorch sees no CUDA GPU"
    elif not loom.cuda_available():
        reason = "Loom was built without CUDA or sees no GPU"
    if reason and os.environ.get("LOOM_REQUIRE_GPU") == "1":
        # scripts/gpu_test.sh on a GPU machine: a GPU test that would skip is a failure.
        if any("cuda" in item.keywords for item in items):
            raise pytest.UsageError(f"LOOM_REQUIRE_GPU=1 but the GPU tests cannot run: {reason}")
    if reason:
        skip = pytest.mark.skip(reason=reason)
        for item in items:
            if "cuda" in item.keywords:
                item.add_marker(skip)


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "cuda: needs a GPU, a CUDA build of Loom and PyTorch with CUDA"
    )


# ml_dtypes is imported so that a missing install fails here, at collection, with its name.
assert ml_dtypes.bfloat16 is not None
