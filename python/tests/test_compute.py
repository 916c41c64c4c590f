"""matmul, reductions and normalisations against NumPy in float32, float16 and bfloat16."""

import numpy as np
import pytest
from conftest import (FLOAT_DTYPES, accumulation_tolerance, as_f64, assert_close, random_array,
                      run_graph)

import loom

DTYPE_IDS = lambda d: d.name  # noqa: E731


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize(
    "shape_a,shape_b",
    [((1, 64), (64, 32)), ((7, 13), (13, 5)), ((2, 1, 3, 4), (5, 4, 6)), ((3, 2, 5), (5, 1))],
    ids=str,
)
def test_matmul(rng, dtype, shape_a, shape_b):
    g = loom.Graph()
    a, b = random_array(rng, shape_a, dtype), random_array(rng, shape_b, dtype)
    x, y = g.placeholder("a", shape_a, dtype), g.placeholder("b", shape_b, dtype)
    got, got_op = run_graph(g, [loom.matmul(x, y), x @ y], {"a": a, "b": b})
    want = np.matmul(as_f64(a), as_f64(b))
    tol = accumulation_tolerance(dtype, shape_a[-1], 4.0)  # k products, each |a b| <= 4
    assert_close(got, want, dtype, "matmul", tol)
    assert_close(got_op, want, dtype, "@", tol)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("transpose_a", [False, True])
@pytest.mark.parametrize("transpose_b", [False, True])
def test_matmul_transposes(rng, dtype, transpose_a, transpose_b):
    m, k, n = 5, 7, 3
    a = random_array(rng, (2, k, m) if transpose_a else (2, m, k), dtype)
    b = random_array(rng, (n, k) if transpose_b else (k, n), dtype)
    g = loom.Graph()
    x, y = g.placeholder("a", a.shape, dtype), g.placeholder("b", b.shape, dtype)
    got = run_graph(g, loom.matmul(x, y, transpose_a=transpose_a, transpose_b=transpose_b),
                    {"a": a, "b": b})
    fa, fb = as_f64(a), as_f64(b)
    if transpose_a:
        fa = np.swapaxes(fa, -1, -2)
    if transpose_b:
        fb = np.swapaxes(fb, -1, -2)
    assert_close(got, fa @ fb, dtype, tolerance=accumulation_tolerance(dtype, k, 4.0))


REDUCTIONS = {
    "sum": (loom.sum, np.sum),
    "mean": (loom.mean, np.mean),
    "max": (loom.max, np.max),
    "min": (loom.min, np.min),
}


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("op", sorted(REDUCTIONS))
@pytest.mark.parametrize("axes", [None, 0, -1, [0, 2], [1]], ids=str)
@pytest.mark.parametrize("keepdims", [False, True])
def test_reductions(rng, dtype, op, axes, keepdims):
    fn, ref = REDUCTIONS[op]
    a = random_array(rng, (3, 1, 17), dtype)
    g = loom.Graph()
    x = g.placeholder("x", a.shape, dtype)
    got = run_graph(g, fn(x, axes, keepdims=keepdims), {"x": a})
    np_axes = tuple(axes) if isinstance(axes, list) else axes
    want = ref(as_f64(a), axis=np_axes, keepdims=keepdims)
    # sum and mean add `count` terms of magnitude <= 2 (mean's divided by count); max and
    # min pick an element.
    count = a.size // max(np.asarray(want).size, 1)
    tol = {"sum": accumulation_tolerance(dtype, count, 2.0),
           "mean": accumulation_tolerance(dtype, count, 2.0 / count)}.get(op, (0.0, 0.0))
    assert_close(got, want, dtype, op, tol)


@pytest.mark.parametrize("dtype", [loom.int32, loom.int64], ids=DTYPE_IDS)
@pytest.mark.parametrize("op", ["sum", "max", "min"])
def test_integer_reductions(rng, dtype, op):
    fn, ref = REDUCTIONS[op]
    a = random_array(rng, (4, 9), dtype, -100, 100)
    g = loom.Graph()
    got = run_graph(g, fn(g.placeholder("x", a.shape, dtype), [1]), {"x": a})
    np.testing.assert_array_equal(got, ref(a, axis=1))


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("axis,keepdims", [(0, False), (-1, True), (1, False)])
def test_argmax(rng, dtype, axis, keepdims):
    a = random_array(rng, (5, 8, 3), dtype)
    a[1, 2, 0] = a[1, 3, 0] = 9  # a tie: the first index wins
    g = loom.Graph()
    got = run_graph(g, loom.argmax(g.placeholder("x", a.shape, dtype), axis, keepdims), {"x": a})
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, np.argmax(as_f64(a), axis=axis, keepdims=keepdims))


def _softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_softmax_and_log_softmax(rng, dtype, axis):
    a = random_array(rng, (3, 5, 33), dtype, -6, 6)
    g = loom.Graph()
    x = g.placeholder("x", a.shape, dtype)
    soft, log_soft = run_graph(g, [loom.softmax(x, axis), loom.log_softmax(x, axis)], {"x": a})
    want = _softmax(as_f64(a), axis)
    assert_close(soft, want, dtype, "softmax")
    assert_close(log_soft, np.log(want), dtype, "log_softmax")


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("with_weight,with_bias", [(False, False), (True, False), (True, True)])
def test_layer_norm(rng, dtype, with_weight, with_bias):
    d = 37
    a = random_array(rng, (2, 3, d), dtype, -3, 5)
    w, b = random_array(rng, (d,), dtype), random_array(rng, (d,), dtype)
    g = loom.Graph()
    x = g.placeholder("x", a.shape, dtype)
    weight = g.placeholder("w", [d], dtype) if with_weight else None
    bias = g.placeholder("b", [d], dtype) if with_bias else None
    feeds = {"x": a}
    if with_weight:
        feeds["w"] = w
    if with_bias:
        feeds["b"] = b
    got = run_graph(g, loom.layer_norm(x, weight, bias, eps=1e-5), feeds)
    fa = as_f64(a)
    want = (fa - fa.mean(-1, keepdims=True)) / np.sqrt(fa.var(-1, keepdims=True) + 1e-5)
    if with_weight:
        want = want * as_f64(w)
    if with_bias:
        want = want + as_f64(b)
    assert_close(got, want, dtype, "layer_norm")


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("with_weight", [False, True])
def test_rms_norm(rng, dtype, with_weight):
    d = 64
    a = random_array(rng, (5, d), dtype)
    w = random_array(rng, (d,), dtype)
    g = loom.Graph()
    x = g.placeholder("x", a.shape, dtype)
    weight = g.constant(w) if with_weight else None
    got = run_graph(g, loom.rms_norm(x, weight, eps=1e-6), {"x": a})
    fa = as_f64(a)
    want = fa / np.sqrt((fa * fa).mean(-1, keepdims=True) + 1e-6)
    if with_weight:
        want = want * as_f64(w)
    assert_close(got, want, dtype, "rms_norm")
