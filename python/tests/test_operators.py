"""Tensor operators with NumPy operands on either side, and == / != as graph ops, checked
against NumPy on fresh random inputs; Tensors stay usable as dict keys and set members."""

import operator

import numpy as np
import pytest
from conftest import assert_close, random_array, run_graph

import loom

ARITHMETIC = [operator.add, operator.sub, operator.mul, operator.truediv, operator.pow]


@pytest.mark.parametrize("op", ARITHMETIC, ids=lambda op: op.__name__)
def test_numpy_array_on_the_left_builds_one_graph_op(rng, op):
    g = loom.Graph()
    x = g.placeholder("x", [2, 3])
    # Positive values keep pow and division away from NaN and infinities.
    a = random_array(rng, [2, 3], low=0.5, high=2.0)
    xv = random_array(rng, [2, 3], low=0.5, high=2.0)
    y = op(a, x)
    assert isinstance(y, loom.Tensor), f"{op.__name__} gave {type(y)}"
    assert y.shape == (2, 3) and y.dtype == loom.float32
    assert_close(run_graph(g, y, {"x": xv}), op(a.astype(np.float64), xv), what=op.__name__)


@pytest.mark.parametrize("op", ARITHMETIC, ids=lambda op: op.__name__)
def test_numpy_array_on_the_right(rng, op):
    g = loom.Graph()
    x = g.placeholder("x", [2, 3])
    a = random_array(rng, [3], low=0.5, high=2.0)  # broadcasts
    xv = random_array(rng, [2, 3], low=0.5, high=2.0)
    y = op(x, a)
    assert isinstance(y, loom.Tensor)
    assert_close(run_graph(g, y, {"x": xv}), op(xv.astype(np.float64), a), what=op.__name__)
    # The op functions take arrays too.
    z = {"add": loom.add, "sub": loom.sub, "mul": loom.mul, "truediv": loom.div,
         "pow": loom.pow}[op.__name__](a, x)
    assert_close(run_graph(g, z, {"x": xv}), op(a.astype(np.float64), xv), what=op.__name__)


def test_issue_example_int_array_plus_float_tensor():
    g = loom.Graph()
    t = g.placeholder("t", [3])
    y = np.array([1, 2, 3]) + t  # int64 array: its values become a float32 constant
    assert isinstance(y, loom.Tensor) and y.shape == (3,)
    tv = np.array([0.5, -1.0, 10.0], np.float32)
    np.testing.assert_array_equal(run_graph(g, y, {"t": tv}), np.array([1.5, 1.0, 13.0]))


def test_numpy_matmul_on_the_left(rng):
    g = loom.Graph()
    x = g.placeholder("x", [3, 4])
    a = random_array(rng, [2, 3])
    xv = random_array(rng, [3, 4])
    y = a @ x
    assert isinstance(y, loom.Tensor) and y.shape == (2, 4)
    assert_close(run_graph(g, y, {"x": xv}), a.astype(np.float64) @ xv)
    z = x.T @ a.T  # and on the right
    assert_close(run_graph(g, z, {"x": xv}), xv.T.astype(np.float64) @ a.T)


def test_numpy_comparisons_on_the_left(rng):
    g = loom.Graph()
    x = g.placeholder("x", [6])
    a = np.array([0, 1, 2, 3, 4, 5], np.float32)
    xv = np.array([5, 1, 0, 3, 9, -1], np.float32)
    outs = run_graph(g, [a < x, a > x, a == x, a != x], {"x": xv})
    for got, want in zip(outs, [a < xv, a > xv, a == xv, a != xv]):
        assert got.dtype == np.bool_
        np.testing.assert_array_equal(got, want)


def test_numpy_scalars_act_as_numbers(rng):
    g = loom.Graph()
    x = g.placeholder("x", [4], loom.int32)
    xv = np.array([1, -2, 3, 7], np.int32)
    y = np.int64(3) * x - np.float64(1.0)
    assert isinstance(y, loom.Tensor) and y.dtype == loom.int32
    np.testing.assert_array_equal(run_graph(g, y, {"x": xv}), 3 * xv - 1)


def test_array_that_would_lose_its_kind_is_a_dtype_error():
    g = loom.Graph()
    i = g.placeholder("i", [3], loom.int32)
    with pytest.raises(loom.DTypeError, match="float64"):
        np.array([0.5, 1.5, 2.5]) + i
    with pytest.raises(loom.DTypeError, match="float64"):
        loom.add(i, np.array([0.5, 1.5, 2.5]))
    b = g.placeholder("b", [2], loom.bool_)
    with pytest.raises(loom.DTypeError):
        np.array([1, 2]) == b
    with pytest.raises(loom.DTypeError):
        g.placeholder("f", [2]) + np.array([1 + 2j, 3j])
    # Objects that are neither numbers nor arrays: Python's own TypeError.
    with pytest.raises(TypeError):
        i + "text"
    with pytest.raises(TypeError):
        [1, 2, 3] + i


def test_float16_tensor_takes_float64_array_rounded(rng):
    g = loom.Graph()
    x = g.placeholder("x", [5], loom.float16)
    a = rng.uniform(-2, 2, size=5)  # float64
    xv = random_array(rng, [5], loom.float16)
    got = run_graph(g, a * x, {"x": xv})
    assert got.dtype == np.float16
    want = a.astype(np.float16).astype(np.float64) * xv.astype(np.float64)
    assert_close(got, want, loom.float16)


def test_eq_and_ne_are_graph_ops():
    g = loom.Graph()
    x = g.placeholder("x", [6])
    y = g.placeholder("y", [6])
    xv = np.array([1, 2, np.nan, 2, -0.0, 5], np.float32)
    yv = np.array([1, 3, np.nan, 2, 0.0, -5], np.float32)
    exprs = [x == 2, x != 2, x == y, x != y, 2 == x, 2 != x]
    for e in exprs:
        assert isinstance(e, loom.Tensor) and e.dtype == loom.bool_ and e.shape == (6,)
    outs = run_graph(g, exprs, {"x": xv, "y": yv})
    wants = [xv == 2, xv != 2, xv == yv, xv != yv, 2 == xv, 2 != xv]
    for got, want in zip(outs, wants):
        np.testing.assert_array_equal(got, want)
    assert outs[3][2], "NaN != NaN is true"
    with pytest.raises(TypeError, match="truth value"):
        bool(x == 2)
    with pytest.raises(TypeError, match="truth value"):
        if x != y:
            pass


def test_eq_with_unrelated_objects_compares_identity():
    g = loom.Graph()
    x = g.placeholder("x", [2])
    assert (x == None) is False  # noqa: E711
    assert (x != "x") is True
    with pytest.raises(TypeError):
        x + None


def test_tensors_stay_hashable_dict_keys_and_set_members():
    g = loom.Graph()
    x = g.placeholder("x", [2])
    y = x + 1.0
    z = loom.exp(x)
    names = {x: "x", y: "y", z: "z"}
    assert names[x] == "x" and names[y] == "y" and names[z] == "z"
    members = {x, y, x, z}
    assert len(members) == 3
    assert x in members and y in members
    assert (x * 2.0) not in members
    assert hash(x) == hash(x)
