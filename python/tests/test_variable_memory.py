"""Variables without data, adopted arrays (numpy.memmap included) and copy-on-write."""

import numpy as np
import pytest

import loom


def test_variable_without_data_is_supplied_by_the_store():
    g = loom.Graph()
    x = g.placeholder("x", [3])
    w = g.variable("w", shape=(3,), dtype="float32")
    assert tuple(w.shape) == (3,)
    exe = loom.compile(g, outputs=[x * w])
    feeds = {"x": np.array([1, 2, 3], np.float32)}
    with pytest.raises(loom.InvalidValueError, match="'w'.*no value"):
        exe.run(feeds)
    exe.variables.adopt("w", np.array([10, 20, 30], np.float32))
    np.testing.assert_array_equal(exe.run(feeds)[0], [10, 40, 90])
    with pytest.raises(loom.InvalidValueError):
        g.variable("v")  # neither a value nor a shape
    with pytest.raises(loom.InvalidValueError):
        g.variable("v", np.zeros(3, np.float32), shape=(3,))


def test_adopted_memmap_is_read_in_place_and_copied_on_write(tmp_path):
    path = tmp_path / "w.bin"
    np.arange(6, dtype=np.float32).tofile(path)
    mapped = np.memmap(path, dtype=np.float32, mode="r", shape=(6,))
    g = loom.Graph()
    w = g.variable("w", shape=(6,), dtype="float32")
    acc = g.variable("acc", shape=(6,), dtype="float32")
    g.assign(acc, g.read(acc) + w)
    store = loom.VariableStore()
    store.adopt("w", mapped)
    store.adopt("acc", mapped)
    exe = loom.compile(g, outputs=[w * 2.0], variables=store)
    assert store.is_shared("w")
    assert not store.is_shared("acc")  # assigned: compile made the store's own copy
    np.testing.assert_array_equal(exe.run()[0], np.arange(6) * 2)
    exe.run()
    np.testing.assert_array_equal(store["acc"], np.arange(6) * 3)
    np.testing.assert_array_equal(np.fromfile(path, np.float32), np.arange(6))
    # A writable alias makes the copy first; the file stays as it was.
    alias = store.get("w", copy=False)
    assert not store.is_shared("w")
    alias[:] = 1
    np.testing.assert_array_equal(exe.run()[0], np.full(6, 2))
    np.testing.assert_array_equal(np.fromfile(path, np.float32), np.arange(6))


def test_adopt_checks_shape_and_dtype():
    store = loom.VariableStore()
    store.adopt("m", np.zeros((2, 3), np.float32))
    with pytest.raises(loom.ShapeError):
        store.adopt("m", np.zeros((3, 2), np.float32))
    with pytest.raises(loom.DTypeError):
        store.adopt("m", np.zeros((2, 3), np.int32))
