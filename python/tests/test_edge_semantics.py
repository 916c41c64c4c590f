"""The edge semantics that docs/python.md states ("Edge semantics"), one test each, against
naive NumPy references: gather gives zero rows for out-of-range and negative indices,
run-time slice starts are clamped (a KV write past the end overwrites the last row), and a
read after an assign in the same graph sees the old value."""

import numpy as np
import pytest
from conftest import random_array

import loom


@pytest.mark.parametrize("index_dtype", [loom.int32, loom.int64])
def test_gather_gives_zero_rows_for_out_of_range_and_negative_indices(rng, index_dtype):
    table = random_array(rng, [5, 3], low=1.0, high=2.0)  # no zero rows of its own
    g = loom.Graph()
    t = g.constant(table)
    i = g.placeholder("i", [7], index_dtype)
    exe = loom.compile(g, outputs=[loom.gather(t, i)])
    indices = np.array([0, 4, 5, -1, -5, 1000, 2], loom.to_numpy_dtype(index_dtype))
    (got,) = exe.run({"i": indices})
    want = np.stack([table[k] if 0 <= k < 5 else np.zeros(3, np.float32) for k in indices])
    np.testing.assert_array_equal(got, want)
    # Tensor indexing with a Tensor is the same gather.
    (got,) = loom.compile(g, outputs=[t[i]]).run({"i": indices})
    np.testing.assert_array_equal(got, want)


def test_run_time_slice_starts_are_clamped(rng):
    x = random_array(rng, [6, 4])
    g = loom.Graph()
    xp = g.placeholder("x", [6, 4])
    s = g.placeholder("s", [1], loom.int64)
    exe = loom.compile(g, outputs=[loom.dynamic_slice(xp, s, axes=[0], sizes=[3])])
    for start in [0, 2, 3, 4, 100, -1, -100]:
        (got,) = exe.run({"x": x, "s": np.array([start])})
        clamped = min(max(start, 0), 6 - 3)
        np.testing.assert_array_equal(got, x[clamped : clamped + 3], err_msg=f"start {start}")


def test_kv_write_past_the_end_overwrites_the_last_row(rng):
    rows, width = 4, 3
    g = loom.Graph()
    cache = g.variable("cache", np.zeros([rows, width], np.float32))
    k = g.placeholder("k", [1, width])
    pos = g.placeholder("pos", [2], loom.int32)
    g.assign(cache, loom.slice_update(g.read(cache), k, pos))
    exe = loom.compile(g)
    assert "slice_update_inplace" in exe.dump()  # the in-place path clamps too

    want = np.zeros([rows, width], np.float32)
    for step, position in enumerate([0, 1, 4, 9, 2**30]):
        row = random_array(rng, [1, width])
        exe.run({"k": row, "pos": np.array([position, 0], np.int32)})
        want[min(position, rows - 1)] = row[0]  # the naive reference: clamp, then write
        np.testing.assert_array_equal(exe.variables["cache"], want, err_msg=f"step {step}")
    # Positions 4, 9 and 2**30 all landed on the last row; rows 0 and 1 kept their writes.
    assert not np.any(want[2])


def test_read_after_assign_in_the_same_graph_sees_the_old_value():
    g = loom.Graph()
    v = g.variable("v", np.array([1.0, 2.0], np.float32))
    g.assign(v, g.read(v) * 10.0)
    after = g.read(v) + 0.5  # built after the assign, still the value at the start of the run
    exe = loom.compile(g, outputs=[after])
    (first,) = exe.run()
    np.testing.assert_array_equal(first, [1.5, 2.5])
    np.testing.assert_array_equal(exe.variables["v"], [10.0, 20.0])  # assigned at the end
    (second,) = exe.run()
    np.testing.assert_array_equal(second, [10.5, 20.5])
    np.testing.assert_array_equal(exe.variables["v"], [100.0, 200.0])
