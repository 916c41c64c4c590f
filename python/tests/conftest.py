"""Shared helpers for the Loom Python tests: fresh random inputs, tolerances by dtype,
one-call compile-and-run, and the `cuda` marker's skip rule."""

import os

import ml_dtypes
import numpy as np
import pytest

import loom

# Every float dtype a test runs in, with the NumPy dtype its inputs are made in.
FLOAT_DTYPES = [loom.float32, loom.float16, loom.bfloat16]

# Relative L2 error allowed per dtype (inputs are rounded to the dtype first, so this only
# covers the kernel's own rounding); the same figures as tests/test_util.h.
TOLERANCE = {loom.float32: 1e-5, loom.float16: 2e-3, loom.bfloat16: 1.6e-2}


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


def assert_close(got, want, dtype=loom.float32, what=""):
    """Relative L2 error within the dtype's tolerance, elementwise sanity, no NaN."""
    got = as_f64(got)
    want = as_f64(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    assert not np.isnan(got).any() or np.isnan(want).any(), f"{what}: NaN in result"
    tol = TOLERANCE.get(loom.dtype(dtype), 0.0)
    if tol == 0.0:
        np.testing.assert_array_equal(got, want, err_msg=what)
        return
    # The floor keeps outputs that happen to be tiny (one element near zero) from turning
    # the kernel's absolute rounding into a large relative error.
    floor = 1e-2 * np.sqrt(max(want.size, 1))
    err = np.linalg.norm(got - want) / max(np.linalg.norm(want), floor)
    assert err <= tol, f"{what}: relative error {err:.3g} > {tol:.3g}"
    scale = np.max(np.abs(want)) if want.size else 0.0
    np.testing.assert_allclose(got, want, rtol=0, atol=tol * 8 * max(scale, 1.0), err_msg=what)


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
