"""Data in and out: zero-copy where promised (same address), copies where the memory
cannot be shared, every dtype's NumPy form, torch on the CPU, variables, pass dumps."""

import gc
import threading
import weakref

import ml_dtypes
import numpy as np
import pytest
from conftest import random_array, torch_or_none

import loom

ALL_DTYPES = [loom.float32, loom.float16, loom.bfloat16, loom.int8, loom.uint8, loom.int32,
              loom.int64, loom.bool_, loom.complex64]


def address(array):
    return array.__array_interface__["data"][0]


def identity_exe(shape, dtype=loom.float32):
    g = loom.Graph()
    x = g.placeholder("x", shape, dtype)
    return loom.compile(g, outputs=[x + x])


@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=lambda d: d.name)
def test_numpy_contiguous_arrays_are_wrapped_without_copy(rng, dtype):
    a = random_array(rng, (3, 5), dtype) if dtype != loom.complex64 else (
        rng.standard_normal((3, 5)) + 1j).astype(np.complex64)
    data = loom.tensor_data(a)
    assert data.dtype == dtype
    assert data.shape == (3, 5)
    assert data.data_ptr == address(a)
    back = data.numpy()
    assert back.dtype == loom.to_numpy_dtype(dtype)
    assert address(back) == address(a)  # out again without a copy, too
    np.testing.assert_array_equal(back, a)


def test_wrapped_array_stays_alive_with_the_data(rng):
    a = random_array(rng, (1000,))
    want = a.copy()
    data = loom.tensor_data(a)
    ref = weakref.ref(a)
    del a
    gc.collect()
    assert ref() is not None  # TensorData keeps the array alive
    np.testing.assert_array_equal(data.numpy(), want)
    del data
    gc.collect()
    assert ref() is None  # ...and lets it go


def misaligned(a):
    """The same values one byte past an aligned address."""
    raw = np.frombuffer(b"\0" + a.tobytes(), np.uint8)
    view = np.ndarray(a.shape, a.dtype, raw, offset=1)
    assert address(view) % a.itemsize != 0
    return view


@pytest.mark.parametrize(
    "make",
    [lambda a: a[:, ::2], lambda a: a[::-1], lambda a: a.T,
     lambda a: np.broadcast_to(a[:1], a.shape), misaligned],
    ids=["strided", "negative-stride", "transposed", "broadcast", "misaligned"],
)
def test_non_contiguous_arrays_are_copied_and_correct(rng, make):
    base = random_array(rng, (6, 8))
    view = make(base)
    data = loom.tensor_data(view)
    assert data.is_contiguous()
    np.testing.assert_array_equal(data.numpy(), view)
    g = loom.Graph()
    x = g.placeholder("x", view.shape)
    (got,) = loom.compile(g, outputs=[x * 2.0]).run({"x": view})
    np.testing.assert_array_equal(got, view * 2)


def test_run_takes_tensor_data_made_without_copy(rng):
    # run() converts each feed as loom.tensor_data does; a TensorData feed is passed as is.
    a = random_array(rng, (4, 6))
    g = loom.Graph()
    x = g.placeholder("x", [4, 6])
    exe = loom.compile(g, outputs=[x + 1.0])
    data = loom.tensor_data(a)
    assert data.data_ptr == address(a)
    a += 1  # the TensorData sees the array's memory, so this write reaches the run
    (got,) = exe.run({"x": data})
    np.testing.assert_array_equal(got, a + 1)


def test_outputs_are_numpy_views_of_loom_memory(rng):
    exe = identity_exe([2, 3])
    a = random_array(rng, (2, 3))
    (as_loom,) = exe.run({"x": a}, output="loom")
    view = as_loom.numpy()
    assert address(view) == as_loom.data_ptr
    np.testing.assert_array_equal(view, a + a)


def test_output_buffers_are_reused_only_when_released(rng):
    exe = identity_exe([64])
    a = random_array(rng, (64,))
    (first,) = exe.run({"x": a})
    first_address = address(first)
    (second,) = exe.run({"x": a * 2})
    assert address(second) != first_address  # `first` is still held: a new buffer
    np.testing.assert_array_equal(first, a + a)  # and `first` did not change
    del first, second
    (third,) = exe.run({"x": a})
    np.testing.assert_array_equal(third, a + a)


@pytest.mark.parametrize("dtype", ALL_DTYPES[:-1], ids=lambda d: d.name)
def test_every_dtype_round_trips_through_run(rng, dtype):
    a = random_array(rng, (2, 7), dtype, 0, 50)
    g = loom.Graph()
    x = g.placeholder("x", a.shape, dtype)
    (got,) = loom.compile(g, outputs=[loom.reshape(x, [14])]).run({"x": a})
    assert got.dtype == a.dtype
    np.testing.assert_array_equal(got, a.reshape(14))


def test_bfloat16_numpy_arrays(rng):
    a = rng.standard_normal((3, 4)).astype(ml_dtypes.bfloat16)
    data = loom.tensor_data(a)
    assert data.dtype == loom.bfloat16
    assert data.data_ptr == address(a)
    g = loom.Graph()
    x = g.placeholder("x", [3, 4], loom.bfloat16)
    (got,) = loom.compile(g, outputs=[x * 2.0]).run({"x": a[:, ::-1]})
    assert got.dtype == ml_dtypes.bfloat16
    np.testing.assert_array_equal(got.astype(np.float32), a[:, ::-1].astype(np.float32) * 2)


def test_bfloat16_outputs_are_not_reused_while_a_view_is_held(rng):
    # A bfloat16 result is a view of a uint16 array; a slice references that inner array.
    g = loom.Graph()
    x = g.placeholder("x", [4], loom.bfloat16)
    exe = loom.compile(g, outputs=[x * 2.0])
    bf16 = np.dtype(ml_dtypes.bfloat16)
    (out,) = exe.run({"x": np.array([1, 2, 3, 4], bf16)})
    view = out[1:]
    bits = out.view(np.uint16)[:2]
    del out
    exe.run({"x": np.array([10, 20, 30, 40], bf16)})
    exe.run({"x": np.array([10, 20, 30, 40], bf16)})
    np.testing.assert_array_equal(view.astype(np.float32), [4, 6, 8])
    np.testing.assert_array_equal(bits.view(bf16).astype(np.float32), [2, 4])
    del view, bits
    (first,) = exe.run({"x": np.array([1, 2, 3, 4], bf16)})
    address_first = address(first)
    del first
    (again,) = exe.run({"x": np.array([5, 6, 7, 8], bf16)})  # dropped: reused as before
    assert address(again) == address_first
    np.testing.assert_array_equal(again.astype(np.float32), [10, 12, 14, 16])


def test_read_only_memory_is_never_exported_writable(tmp_path):
    np.save(tmp_path / "a.npy", np.arange(8, dtype=np.float32))
    mapped = np.load(tmp_path / "a.npy", mmap_mode="r")
    data = loom.tensor_data(mapped)  # copied: TensorData's memory is exported writable
    assert data.data_ptr != address(mapped)
    out = data.numpy()
    out[0] = 5.0
    np.testing.assert_array_equal(mapped, np.arange(8, dtype=np.float32))
    assert data.numpy()[0] == 5.0

    immutable = bytes(16)
    as_bytes = loom.tensor_data(memoryview(immutable))
    as_bytes.numpy()[0] = 7
    assert immutable == bytes(16)

    readonly = np.ones(4, ml_dtypes.bfloat16)
    readonly.setflags(write=False)
    copied = loom.tensor_data(readonly)
    assert copied.dtype == loom.bfloat16 and copied.data_ptr != address(readonly)
    copied.numpy()[0] = 3
    assert float(readonly[0]) == 1.0

    # Feeds are only read, so read-only arrays are fed as they are.
    g = loom.Graph()
    x = g.placeholder("x", [8])
    (got,) = loom.compile(g, outputs=[x + 1.0]).run({"x": mapped})
    np.testing.assert_array_equal(got, np.arange(8, dtype=np.float32) + 1)


def test_scalars_and_lists_take_the_placeholder_dtype():
    g = loom.Graph()
    x = g.placeholder("x", [2, 2], loom.float16)
    n = g.placeholder("n", [], loom.int32)
    exe = loom.compile(g, outputs=[x * 2.0, n + n])
    doubled, twice = exe.run({"x": [[1, 2], [3, 4]], "n": 21})
    assert doubled.dtype == np.float16 and twice.dtype == np.int32
    np.testing.assert_array_equal(doubled, [[2, 4], [6, 8]])
    assert twice == 42
    assert loom.tensor_data(1.5).dtype == loom.float32
    assert loom.tensor_data([1, 2]).dtype == loom.int64
    assert loom.tensor_data(True).dtype == loom.bool_


def test_feeds_accept_any_mapping_and_keyword_call(rng):
    exe = identity_exe([3])
    a = random_array(rng, (3,))

    class Feeds(dict):
        pass

    np.testing.assert_array_equal(exe.run(Feeds(x=a))[0], a + a)
    np.testing.assert_array_equal(exe(x=a)[0], a + a)


def test_a_run_releases_the_feeds(rng):
    exe = identity_exe([100])
    a = random_array(rng, (100,))
    ref = weakref.ref(a)
    exe.run({"x": a})
    del a
    gc.collect()
    assert ref() is None


def test_tensor_data_speaks_dlpack(rng):
    a = random_array(rng, (3, 4))
    data = loom.tensor_data(a)
    assert data.__dlpack_device__() == (1, 0)
    b = np.from_dlpack(data)
    assert address(b) == address(a)
    c = np.asarray(data)
    np.testing.assert_array_equal(c, a)
    # A raw DLPack capsule is accepted, once.
    capsule = a.__dlpack__()
    again = loom.tensor_data(capsule)
    assert again.data_ptr == address(a)


def test_constants_and_variables_copy_their_arrays(rng):
    a = random_array(rng, (2, 2))
    g = loom.Graph()
    c = g.constant(a)
    v = g.variable("v", a)
    exe = loom.compile(g, outputs=[c + 0.0, v + 0.0])
    want = a.copy()
    a[:] = 100  # later writes to the array do not reach the graph
    got_c, got_v = exe.run()
    np.testing.assert_array_equal(got_c, want)
    np.testing.assert_array_equal(got_v, want)
    assert g.constant(3, loom.int32).dtype == loom.int32
    assert g.constant([1.5, 2.5], "float16").dtype == loom.float16


def test_variables_get_set_and_share(rng):
    w0 = random_array(rng, (3,))
    g = loom.Graph()
    w = g.variable("w", w0)
    x = g.placeholder("x", [3])
    g.assign(w, g.read(w) + x)
    exe = loom.compile(g, outputs=[g.read(w) * 1.0])
    store = exe.variables
    assert "w" in store and list(store) == ["w"] and len(store) == 1
    np.testing.assert_array_equal(store["w"], w0)
    one = np.ones(3, np.float32)
    exe.run({"x": one})
    np.testing.assert_allclose(store["w"], w0 + 1, rtol=1e-6)
    store["w"] = np.zeros(3, np.float32)
    np.testing.assert_array_equal(store["w"], np.zeros(3))
    live = store.get("w", copy=False)
    exe.run({"x": one})
    np.testing.assert_array_equal(live, np.ones(3))  # a view sees the in-place update
    snapshot = store["w"]
    exe.run({"x": one})
    np.testing.assert_array_equal(snapshot, np.ones(3))  # a copy does not
    with pytest.raises(loom.Error):
        store["w"] = np.zeros(4, np.float32)  # shape must match
    with pytest.raises(loom.DTypeError):
        store["w"] = np.zeros(3, np.int32)
    with pytest.raises(loom.InvalidValueError):
        store["missing"]

    # A shared store: a second executable sees the first one's updates.
    shared = loom.VariableStore()
    g2 = loom.Graph()
    v = g2.variable("w", w0)
    g2.assign(v, g2.read(v) * 2.0)
    writer = loom.compile(g2, outputs=[], variables=shared)
    g3 = loom.Graph()
    reader = loom.compile(g3, outputs=[g3.variable("w", w0) + 0.0], variables=shared)
    writer.run()
    np.testing.assert_allclose(reader.run()[0], w0 * 2, rtol=1e-6)


def test_dumps_stats_and_pass_names(rng):
    g = loom.Graph()
    x = g.placeholder("x", [4])
    y = (x + 1.0) * 2.0
    assert "placeholder" in g.dump() and "add" in g.dump()
    exe = loom.compile(g, outputs=[y], keep_pass_dumps=True)
    names = [name for name, _ in exe.pass_dumps]
    assert names[0] == "input"
    assert names[1:] == loom.pass_names()
    assert "mul" in exe.dump()
    exe.run({"x": random_array(rng, (4,))})
    stats = exe.last_run_stats
    # Static shapes are planned by compile, so no run plans.
    # One kernel: fuse_elementwise turns the add and the mul into one fused node.
    assert stats.kernels == 1 and not stats.planned
    assert "-> cpu.fused" in exe.dump()
    assert exe.device == "cpu"
    no_cse = loom.compile(g, outputs=[y], disabled_passes=["common_subexpressions"], keep_pass_dumps=True)
    assert "common_subexpressions" not in [name for name, _ in no_cse.pass_dumps]


def test_concurrent_runs_from_threads(rng):
    exe = identity_exe(["n"])
    arrays = [random_array(rng, (n,)) for n in range(1, 40)]
    errors = []

    def work(a):
        try:
            for _ in range(20):
                np.testing.assert_array_equal(exe.run({"x": a})[0], a + a)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(a,)) for a in arrays]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


torch = torch_or_none()


@pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
@pytest.mark.parametrize("dtype", [loom.float32, loom.float16, loom.bfloat16, loom.int64, loom.bool_],
                         ids=lambda d: d.name)
def test_torch_cpu_tensors_in_and_out_without_copy(rng, dtype):
    t = torch.from_numpy(random_array(rng, (3, 4), loom.float32)).to(loom.to_torch_dtype(dtype))
    data = loom.tensor_data(t)
    assert data.data_ptr == t.data_ptr() and data.dtype == dtype
    g = loom.Graph()
    x = g.placeholder("x", [3, 4], dtype)
    exe = loom.compile(g, outputs=[loom.reshape(x, [12])])
    (out,) = exe.run({"x": t}, output="torch")
    assert isinstance(out, torch.Tensor) and out.dtype == t.dtype
    assert torch.equal(out, t.reshape(12))
    (as_loom,) = exe.run({"x": t}, output="loom")
    shared = torch.from_dlpack(as_loom)
    assert shared.data_ptr() == as_loom.data_ptr
    # Transposed torch tensors are made contiguous.
    (transposed,) = loom.compile(g, outputs=[x]).run({"x": t.T.contiguous().T})
    np.testing.assert_array_equal(np.asarray(transposed, dtype=np.float64),
                                  t.to(torch.float64).numpy())


def test_torch_output_without_torch_is_a_clear_error(rng):
    if torch is not None:
        pytest.skip("PyTorch is installed")
    exe = identity_exe([2])
    with pytest.raises(loom.UnsupportedError, match="PyTorch"):
        exe.run({"x": np.ones(2, np.float32)}, output="torch")
