"""Whole graphs from Python: a two-layer MLP and a KV-cache append loop."""

import math

import numpy as np
import pytest
from conftest import (FLOAT_DTYPES, accumulation_tolerance, as_f64, assert_close,
                      normalized_tolerance, random_array)

import loom


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=lambda d: d.name)
def test_two_layer_mlp(rng, dtype):
    d_in, d_hidden, d_out = 16, 33, 7
    w1, b1 = random_array(rng, (d_in, d_hidden), dtype, -0.5, 0.5), random_array(rng, (d_hidden,), dtype)
    w2, b2 = random_array(rng, (d_hidden, d_out), dtype, -0.5, 0.5), random_array(rng, (d_out,), dtype)
    g = loom.Graph()
    x = g.placeholder("x", ["batch", d_in], dtype)
    hidden = loom.gelu(x @ g.variable("w1", w1) + g.variable("b1", b1))
    logits = hidden @ g.variable("w2", w2) + g.variable("b2", b2)
    probs = loom.softmax(logits, -1)
    exe = loom.compile(g, outputs=[logits, probs])

    np_dtype = loom.to_numpy_dtype(dtype)

    def rounded(v):
        return as_f64(v.astype(np.float32).astype(np_dtype))

    def reference(a):
        # Loom's CPU rounds each stored value to the dtype: each matmul's product, the sum with
        # the bias, the gelu (no fused matmul + bias on the CPU).
        h = rounded(rounded(as_f64(a) @ as_f64(w1)) + as_f64(b1))
        h = rounded(0.5 * h * (1 + np.vectorize(math.erf)(h / np.sqrt(2))))
        product = rounded(h @ as_f64(w2))
        return h, product, product + as_f64(b2)

    def softmax(logits):
        e = np.exp(logits - logits.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    eps = float(np.finfo(np.float32).eps) if dtype == loom.float32 else (
        2.0**-10 if dtype == loom.float16 else 2.0**-7)
    for batch in (1, 5, 32):
        a = random_array(rng, (batch, d_in), dtype)
        got_logits, got_probs = exe.run({"x": a})
        h, product, want_logits = reference(a)
        # Logits: sums of 33 products (|h w2| <= 0.5 |h|) in f32, rounded, plus the bias. A
        # value on a rounding boundary may round the other way from f32 than from double: a
        # product an ulp off (absolute: the bias may cancel it), or a hidden value an ulp
        # off, which moves a logit by up to 0.5 * eps * max|h|.
        l_rtol, l_atol = accumulation_tolerance(dtype, d_hidden, 0.5 * np.abs(h).max())
        l_atol += eps * np.abs(product).max() + 0.5 * eps * np.abs(h).max()
        assert_close(got_logits, want_logits, dtype, f"logits, batch {batch}", (l_rtol, l_atol))
        # Probabilities: the softmax of the logits Loom computed, within the dtype's rounding
        # and the f32 sum over 7 of them.
        assert_close(got_probs, softmax(as_f64(got_logits)), dtype, f"probs, batch {batch}",
                     normalized_tolerance(dtype, d_out))


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=lambda d: d.name)
def test_kv_cache_append_loop(rng, dtype):
    max_seq, heads, d = 128, 2, 8
    g = loom.Graph()
    cache = g.variable("k_cache", np.zeros((heads, max_seq, d), loom.to_numpy_dtype(dtype)))
    k = g.placeholder("k", [heads, 1, d], dtype)
    starts = g.placeholder("starts", [3], loom.int64)
    q = g.placeholder("q", [heads, 1, d], dtype)
    # As a decode step does: append this step's row, then attend over the updated cache.
    updated = loom.slice_update(g.read(cache), k, starts)
    g.assign(cache, updated)
    scores = loom.matmul(q, updated, transpose_b=True)
    exe = loom.compile(g, outputs=[scores])
    assert "slice_update_inplace" in exe.dump()  # the append is a write into the cache

    want = np.zeros((heads, max_seq, d), np.float64)
    for step in range(100):
        new_k = random_array(rng, (heads, 1, d), dtype)
        query = random_array(rng, (heads, 1, d), dtype)
        (got_scores,) = exe.run({"k": new_k, "starts": np.array([0, step, 0]), "q": query})
        want[:, step:step + 1, :] = as_f64(new_k)
        # Rows not written yet are zero.
        assert_close(got_scores, as_f64(query) @ np.swapaxes(want, -1, -2), dtype,
                     f"scores at step {step}")
        cache_bytes = heads * max_seq * d * np.dtype(loom.to_numpy_dtype(dtype)).itemsize
        assert exe.last_run_stats.bytes_written < cache_bytes
    np.testing.assert_array_equal(as_f64(exe.variables["k_cache"]), want)
