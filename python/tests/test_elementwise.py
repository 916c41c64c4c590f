"""Elementwise ops and Tensor operators against NumPy, with broadcasting, odd sizes and
size-one dims, in float32, float16 and bfloat16 (and integers where the op takes them)."""

import math

import numpy as np
import pytest
from conftest import FLOAT_DTYPES, as_f64, assert_close, random_array, run_graph

import loom

# (first shape, second shape): equal, broadcast both ways, size-one dims, scalar, odd sizes.
BROADCAST_SHAPES = [
    ((7, 13), (7, 13)),
    ((3, 1, 5), (4, 5)),
    ((1,), (2, 3)),
    ((), (2, 3)),
    ((4, 1), (1, 6)),
    ((2, 3, 1, 1), (1, 1, 5)),
]

BINARY = {
    "add": (loom.add, np.add),
    "sub": (loom.sub, np.subtract),
    "mul": (loom.mul, np.multiply),
    "div": (loom.div, np.divide),
    "maximum": (loom.maximum, np.maximum),
    "minimum": (loom.minimum, np.minimum),
}


def binary_case(rng, op, dtype, shape_a, shape_b):
    g = loom.Graph()
    a = random_array(rng, shape_a, dtype)
    b = random_array(rng, shape_b, dtype)
    if op == "div":  # keep the divisor away from zero
        b = (np.abs(as_f64(b)) + 0.5).astype(np.float32).astype(a.dtype)
    x = g.placeholder("a", shape_a, dtype)
    y = g.placeholder("b", shape_b, dtype)
    fn, ref = BINARY[op]
    got = run_graph(g, fn(x, y), {"a": a, "b": b})
    return got, ref(as_f64(a), as_f64(b))


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize("op", sorted(BINARY))
@pytest.mark.parametrize("shapes", BROADCAST_SHAPES, ids=str)
def test_binary_float(rng, op, dtype, shapes):
    got, want = binary_case(rng, op, dtype, *shapes)
    assert got.dtype == loom.to_numpy_dtype(dtype)
    assert_close(got, want, dtype, op)


@pytest.mark.parametrize("dtype", [loom.int32, loom.int64], ids=lambda d: d.name)
@pytest.mark.parametrize("op", ["add", "sub", "mul", "maximum", "minimum"])
def test_binary_int(rng, op, dtype):
    g = loom.Graph()
    a = random_array(rng, (3, 1, 5), dtype, -50, 50)
    b = random_array(rng, (4, 5), dtype, -50, 50)
    fn, ref = BINARY[op]
    x, y = g.placeholder("a", a.shape, dtype), g.placeholder("b", b.shape, dtype)
    got = run_graph(g, fn(x, y), {"a": a, "b": b})
    np.testing.assert_array_equal(got, ref(a, b))


def test_integer_division_truncates_and_survives_zero(rng):
    g = loom.Graph()
    a = np.array([7, -7, 7, -7, 5], np.int32)
    b = np.array([2, 2, -2, -2, 0], np.int32)
    x, y = g.placeholder("a", [5], loom.int32), g.placeholder("b", [5], loom.int32)
    got = run_graph(g, x / y, {"a": a, "b": b})
    np.testing.assert_array_equal(got, [3, -3, -3, 3, 0])


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=lambda d: d.name)
def test_pow(rng, dtype):
    g = loom.Graph()
    a = random_array(rng, (5, 7), dtype, 0.1, 2.0)
    b = random_array(rng, (7,), dtype, -1.5, 1.5)
    x, y = g.placeholder("a", a.shape, dtype), g.placeholder("b", b.shape, dtype)
    got1, got2 = run_graph(g, [loom.pow(x, y), x**2.0], {"a": a, "b": b})
    assert_close(got1, np.power(as_f64(a), as_f64(b)), dtype, "pow")
    assert_close(got2, as_f64(a) ** 2, dtype, "x ** 2")


@pytest.mark.parametrize("dtype", FLOAT_DTYPES + [loom.int32], ids=lambda d: d.name)
def test_comparisons_and_where(rng, dtype):
    g = loom.Graph()
    a = random_array(rng, (4, 1, 6), dtype, -3, 3)
    b = random_array(rng, (3, 6), dtype, -3, 3)
    b[0, :2] = a[0, 0, :2]  # some equal elements
    x, y = g.placeholder("a", a.shape, dtype), g.placeholder("b", b.shape, dtype)
    eq, lt, gt, lt_op, gt_op, chosen = run_graph(
        g,
        [loom.equal(x, y), loom.less(x, y), loom.greater(x, y), x < y, x > y,
         loom.where(loom.less(x, y), x, y)],
        {"a": a, "b": b},
    )
    fa, fb = as_f64(a), as_f64(b)
    for got, want in [(eq, fa == fb), (lt, fa < fb), (gt, fa > fb), (lt_op, fa < fb),
                      (gt_op, fa > fb)]:
        assert got.dtype == np.bool_
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(as_f64(chosen), np.where(fa < fb, fa, fb))


def test_where_broadcasts_three_ways_and_takes_scalars(rng):
    g = loom.Graph()
    c = rng.integers(0, 2, size=(2, 1, 4)).astype(np.bool_)
    a = random_array(rng, (3, 1))
    b = random_array(rng, (4,))
    tc = g.placeholder("c", c.shape, loom.bool_)
    ta, tb = g.placeholder("a", a.shape), g.placeholder("b", b.shape)
    got, with_scalar = run_graph(g, [loom.where(tc, ta, tb), loom.where(tc, ta, 0.0)],
                                 {"c": c, "a": a, "b": b})
    np.testing.assert_allclose(got, np.where(c, a, b), rtol=0)
    np.testing.assert_allclose(with_scalar, np.where(c, a, 0.0), rtol=0)


def _gelu(x):
    return 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))


def _gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


UNARY = {
    "neg": (loom.neg, np.negative, (-3, 3)),
    "abs": (loom.abs, np.abs, (-3, 3)),
    "exp": (loom.exp, np.exp, (-3, 3)),
    "log": (loom.log, np.log, (0.1, 4)),
    "sqrt": (loom.sqrt, np.sqrt, (0.0, 4)),
    "rsqrt": (loom.rsqrt, lambda x: 1 / np.sqrt(x), (0.1, 4)),
    "sin": (loom.sin, np.sin, (-3, 3)),
    "cos": (loom.cos, np.cos, (-3, 3)),
    "tanh": (loom.tanh, np.tanh, (-3, 3)),
    "sigmoid": (loom.sigmoid, lambda x: 1 / (1 + np.exp(-x)), (-5, 5)),
    "silu": (loom.silu, lambda x: x / (1 + np.exp(-x)), (-5, 5)),
    "relu": (loom.relu, lambda x: np.maximum(x, 0), (-3, 3)),
    "gelu": (loom.gelu, _gelu, (-4, 4)),
    "gelu_tanh": (lambda t: loom.gelu(t, approximate="tanh"), _gelu_tanh, (-4, 4)),
}


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize("op", sorted(UNARY))
@pytest.mark.parametrize("shape", [(7, 13), (1,), (), (2, 1, 33)], ids=str)
def test_unary(rng, op, dtype, shape):
    fn, ref, (low, high) = UNARY[op]
    g = loom.Graph()
    a = random_array(rng, shape, dtype, low, high)
    x = g.placeholder("x", shape, dtype)
    got = run_graph(g, fn(x), {"x": a})
    assert_close(got, ref(as_f64(a)), dtype, op)


ALL_DTYPES = [loom.float32, loom.float16, loom.bfloat16, loom.int8, loom.uint8, loom.int32,
              loom.int64, loom.bool_]


@pytest.mark.parametrize("src", ALL_DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize("dst", ALL_DTYPES, ids=lambda d: d.name)
def test_cast(rng, src, dst):
    g = loom.Graph()
    a = random_array(rng, (3, 5), src, 0, 100)
    x = g.placeholder("x", a.shape, src)
    got = run_graph(g, loom.cast(x, dst), {"x": a})
    assert got.dtype == loom.to_numpy_dtype(dst)
    if dst == loom.bool_:
        np.testing.assert_array_equal(got, as_f64(a) != 0)
    elif dst.is_floating_point:
        # Rounding to the destination once is what a correct cast does.
        want = as_f64(a).astype(np.float32).astype(loom.to_numpy_dtype(dst))
        np.testing.assert_array_equal(as_f64(got), as_f64(want))
    else:
        np.testing.assert_array_equal(as_f64(got), np.trunc(as_f64(a)))


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=lambda d: d.name)
def test_operators_and_reflected_scalars(rng, dtype):
    g = loom.Graph()
    a = random_array(rng, (3, 4), dtype, 0.5, 2)
    b = random_array(rng, (4,), dtype, 0.5, 2)
    x, y = g.placeholder("a", a.shape, dtype), g.placeholder("b", b.shape, dtype)
    exprs = [x + y, x - y, x * y, x / y, -x, x + 2, 2 + x, x - 2, 2 - x, x * 3, 3 * x, x / 4,
             4 / x, 2**x, abs(-x)]
    fa, fb = as_f64(a), as_f64(b)
    wants = [fa + fb, fa - fb, fa * fb, fa / fb, -fa, fa + 2, 2 + fa, fa - 2, 2 - fa, fa * 3,
             3 * fa, fa / 4, 4 / fa, 2**fa, fa]
    results = run_graph(g, exprs, {"a": a, "b": b})
    for i, (got, want) in enumerate(zip(results, wants)):
        assert_close(got, want, dtype, f"expression {i}")


def test_operators_with_unknown_operands_return_not_implemented():
    g = loom.Graph()
    x = g.placeholder("x", [2])
    assert x.__add__("text") is NotImplemented
    with pytest.raises(TypeError):
        x + "text"
    with pytest.raises(TypeError):
        x @ object()


def test_symbolic_dims_bind_per_run(rng):
    g = loom.Graph()
    x = g.placeholder("x", ["n", 4])
    y = g.placeholder("y", [4])
    exe = loom.compile(g, outputs=[x * y])
    b = random_array(rng, (4,))
    for n in (3, 1, 8):
        a = random_array(rng, (n, 4))
        (got,) = exe.run({"x": a, "y": b})
        assert_close(got, as_f64(a) * as_f64(b), what=f"n={n}")
