"""Whole graphs from Python: a two-layer MLP and a KV-cache append loop."""

import math

import numpy as np
import pytest
from conftest import FLOAT_DTYPES, as_f64, assert_close, random_array

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

    def reference(a):
        h = as_f64(a) @ as_f64(w1) + as_f64(b1)
        # The hidden layer is rounded to the dtype, as Loom stores it.
        h = 0.5 * h * (1 + np.vectorize(math.erf)(h / np.sqrt(2)))
        h = h.astype(np.float32).astype(loom.to_numpy_dtype(dtype))
        out = as_f64(h) @ as_f64(w2) + as_f64(b2)
        e = np.exp(out - out.max(-1, keepdims=True))
        return out, e / e.sum(-1, keepdims=True)

    for batch in (1, 5, 32):
        a = random_array(rng, (batch, d_in), dtype)
        got_logits, got_probs = exe.run({"x": a})
        want_logits, want_probs = reference(a)
        # Two layers accumulate two roundings of the dtype.
        assert_close(got_logits, want_logits, dtype if dtype == loom.float32 else loom.bfloat16,
                     f"logits, batch {batch}")
        assert_close(got_probs, want_probs, dtype if dtype == loom.float32 else loom.bfloat16,
                     f"probs, batch {batch}")


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
