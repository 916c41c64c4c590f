"""The test harness itself: conftest.assert_close is elementwise (a few wrong elements, or a
wrong small value beside large ones, fail), and LOOM_REQUIRE_GPU=1 turns GPU-test skips into
a failure."""

import os
import subprocess
import sys

import ml_dtypes
import numpy as np
import pytest
from conftest import accumulation_tolerance, assert_close, torch_or_none

import loom


def test_a_few_wrong_elements_among_many_fail(rng):
    want = rng.uniform(-1, 1, size=(256, 256)).astype(ml_dtypes.bfloat16)
    got = want.copy()
    assert_close(got, want, loom.bfloat16)
    got.flat[::6007] += ml_dtypes.bfloat16(1.0)  # 11 wrong (by about 1) of 65536
    with pytest.raises(AssertionError, match="11 of 65536"):
        assert_close(got, want, loom.bfloat16)


def test_small_probabilities_are_checked():
    want = np.array([0.9, 0.09, 1e-5, 9e-3], np.float32)
    got = want.copy()
    got[2] = 1e-3
    with pytest.raises(AssertionError, match=r"worst at \(2,\)"):
        assert_close(got, want, loom.float32)


def test_nan_only_where_nan_is_expected():
    want = np.array([np.nan, np.inf, -np.inf, 1.0])
    assert_close(want.copy(), want)
    for i, bad in [(0, 0.0), (1, -np.inf), (3, np.nan), (1, 1e30)]:
        got = want.copy()
        got[i] = bad
        with pytest.raises(AssertionError, match="1 of 4"):
            assert_close(got, want)


def test_integers_are_exact_and_tolerances_add():
    with pytest.raises(AssertionError):
        assert_close(np.array([3], np.int32), np.array([4], np.int32), loom.int32)
    assert_close(np.array([101.0]), np.array([100.0]), tolerance=(0.01, 0.0))
    with pytest.raises(AssertionError):
        assert_close(np.array([101.0]), np.array([100.0]), tolerance=(0.009, 0.0))
    rtol, atol = accumulation_tolerance(loom.float32, 4096)
    assert 1.3e-6 < rtol < 1e-4 and 1e-5 < atol < 1e-2


def gpu_tests_can_run():
    torch = torch_or_none()
    return torch is not None and torch.cuda.is_available() and loom.cuda_available()


@pytest.mark.skipif(gpu_tests_can_run(), reason="the GPU tests run here")
def test_require_gpu_turns_gpu_skips_into_a_failure():
    here = os.path.dirname(os.path.abspath(__file__))
    env = dict(os.environ, LOOM_REQUIRE_GPU="1")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         os.path.join(here, "test_cuda.py")],
        env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0, done.stdout
    assert "LOOM_REQUIRE_GPU=1" in done.stdout + done.stderr
