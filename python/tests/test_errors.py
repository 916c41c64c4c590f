"""Errors: loom::Error arrives as a Python exception of its category with the same
message, and nothing a Python user passes crashes the interpreter."""

import gc
import mmap
import threading

import numpy as np
import pytest
from conftest import random_array, torch_or_none

import loom


def test_error_classes_follow_categories():
    assert issubclass(loom.ShapeError, loom.Error) and issubclass(loom.ShapeError, ValueError)
    assert issubclass(loom.DTypeError, loom.Error) and issubclass(loom.DTypeError, TypeError)
    assert issubclass(loom.InvalidValueError, ValueError)
    assert not hasattr(loom, "ValueError_")  # removed: InvalidValueError is the one name
    assert issubclass(loom.IOError, OSError)
    assert issubclass(loom.DeviceError, RuntimeError)
    assert issubclass(loom.UnsupportedError, NotImplementedError)
    assert issubclass(loom.InternalError, RuntimeError)
    assert issubclass(loom.Error, Exception)


def test_shape_error_names_the_op_and_shapes():
    g = loom.Graph()
    a, b = g.placeholder("a", [2, 3]), g.placeholder("b", [4, 3])
    with pytest.raises(loom.ShapeError) as info:
        loom.add(a, b)
    message = str(info.value)
    assert "add" in message and "[2, 3]" in message and "[4, 3]" in message
    with pytest.raises(ValueError):  # caught as the builtin, too
        a + b
    with pytest.raises(loom.ShapeError, match="matmul"):
        loom.matmul(g.placeholder("m", [2, 5]), g.placeholder("n", [4, 3]))


def test_dtype_errors():
    g = loom.Graph()
    f32, f16 = g.placeholder("a", [2]), g.placeholder("b", [2], loom.float16)
    with pytest.raises(loom.DTypeError) as info:
        f32 + f16
    assert "f32" in str(info.value) and "f16" in str(info.value)
    with pytest.raises(TypeError):
        loom.exp(g.placeholder("i", [2], loom.int32))
    with pytest.raises(loom.DTypeError, match="float64"):
        g.placeholder("d", [2], "float64")
    with pytest.raises(loom.DTypeError):
        g.placeholder("d", [2], np.float64)
    with pytest.raises(loom.DTypeError):
        loom.dtype(None)
    with pytest.raises(loom.DTypeError):
        loom.dtype(object())


@pytest.mark.parametrize("axis", [3, -4])
def test_axis_out_of_range(axis):
    g = loom.Graph()
    x = g.placeholder("x", [2, 3, 4])
    with pytest.raises(loom.ShapeError):
        loom.softmax(x, axis)
    with pytest.raises(loom.ShapeError):
        loom.sum(x, [axis])


def test_bad_shapes_and_arguments():
    g = loom.Graph()
    with pytest.raises(loom.InvalidValueError):
        g.placeholder("x", "seq")
    with pytest.raises(loom.InvalidValueError):
        g.placeholder("x", [2, None])
    with pytest.raises(loom.InvalidValueError):
        g.placeholder("x", [2.5])
    with pytest.raises(loom.ShapeError):
        g.placeholder("x", [-2])
    x = g.placeholder("x", [4])
    with pytest.raises(TypeError):
        loom.relu(None)
    with pytest.raises(TypeError):
        loom.relu("x")
    with pytest.raises(TypeError):
        loom.matmul(x, [1, 2])
    with pytest.raises(loom.InvalidValueError):
        loom.add("a", "b")
    with pytest.raises(loom.InvalidValueError):
        loom.add(x, "b")
    with pytest.raises(loom.InvalidValueError):
        loom.gelu(x, approximate="sigmoid")
    with pytest.raises(loom.InvalidValueError):
        loom.sum(x, axes=["a"])
    with pytest.raises(TypeError):
        loom.Tensor()  # tensors come from graphs only
    with pytest.raises(loom.Error):
        g.add_node("no_such_op", [x])


def test_tensors_of_two_graphs_do_not_mix():
    a = loom.Graph().placeholder("a", [2])
    b = loom.Graph().placeholder("b", [2])
    with pytest.raises(loom.Error):
        a + b


def test_compile_errors():
    g = loom.Graph()
    x = g.placeholder("x", [2])
    with pytest.raises(loom.InvalidValueError, match="unknown pass"):
        loom.compile(g, outputs=[x], disabled_passes=["no_such_pass"])
    with pytest.raises(loom.InvalidValueError):
        loom.compile(g, outputs=[x], device="tpu")
    with pytest.raises(loom.InvalidValueError):
        loom.compile(g, outputs=["x"])
    with pytest.raises(loom.InvalidValueError):
        loom.compile(g, outputs=3)
    with pytest.raises(TypeError):
        loom.compile(None, outputs=[x])
    if not loom.cuda_available():
        with pytest.raises(loom.DeviceError):
            loom.compile(g, outputs=[x + 1.0], device="cuda")


@pytest.mark.parametrize("name", ["gpu", "GPU", "cuda:", "cuda:x", "Cpu", ""])
def test_unknown_device_names_are_rejected_naming_the_valid_ones(name):
    with pytest.raises(loom.InvalidValueError, match="valid names: cpu, cuda, cuda:N"):
        loom.VariableStore(name)
    g = loom.Graph()
    with pytest.raises(loom.InvalidValueError, match="valid names"):
        loom.compile(g, outputs=[g.placeholder("x", [2])], device=name)


def cuda_index_exists(index):
    try:
        loom.VariableStore(f"cuda:{index}")
    except loom.DeviceError:
        return False
    return True


@pytest.mark.parametrize("device", ["cuda", "cuda:7"])
def test_store_and_compile_on_an_absent_gpu_are_device_errors(device):
    if loom.cuda_available() and (device == "cuda" or cuda_index_exists(7)):
        pytest.skip(f"{device} exists here")
    with pytest.raises(loom.DeviceError, match=device):
        loom.VariableStore(device)
    g = loom.Graph()
    x = g.placeholder("x", [2])
    y = x + g.variable("w", np.ones(2, np.float32))
    # The CUDA backend names an absent GPU "CUDA device 7".
    named = rf"{device}|device {device[5:]} "
    with pytest.raises(loom.DeviceError, match=named):
        loom.compile(g, outputs=[y], device=device)
    with pytest.raises(loom.DeviceError, match=named):
        loom.compile(g, outputs=[x * 2.0], device=device)


def test_shared_store_conflicts_name_the_variable_and_both_types():
    store = loom.VariableStore()
    g = loom.Graph()
    g.variable("w", np.zeros([2, 3], np.float32))
    loom.compile(g, variables=store)

    other = loom.Graph()
    other.variable("w", np.zeros([2, 3], np.float16))
    with pytest.raises(loom.DTypeError) as info:
        loom.compile(other, variables=store)
    message = str(info.value)
    assert "'w'" in message and "f32" in message and "f16" in message, message

    reshaped = loom.Graph()
    reshaped.variable("w", np.zeros([3, 2], np.float32))
    with pytest.raises(loom.ShapeError) as info:
        loom.compile(reshaped, variables=store)
    message = str(info.value)
    assert "'w'" in message and "[2, 3]" in message and "[3, 2]" in message, message

    with pytest.raises(loom.DTypeError, match="'w'"):
        store.declare("w", np.zeros([2, 3], np.int32))


def make_exe():
    g = loom.Graph()
    x = g.placeholder("x", ["n", 3])
    return loom.compile(g, outputs=[x * 2.0])


@pytest.mark.parametrize(
    "feeds,error",
    [
        ({"x": None}, loom.InvalidValueError),
        ({"x": "text"}, loom.InvalidValueError),
        ({"x": b"bytes"}, loom.InvalidValueError),
        ({"x": [[1, 2], [3]]}, loom.InvalidValueError),
        ({"x": object()}, loom.InvalidValueError),
        ({"x": np.zeros((2, 3), np.float64)}, loom.DTypeError),
        ({"x": np.zeros((2, 3), np.int32)}, loom.DTypeError),
        ({"x": np.zeros((2, 3), np.uint16)}, loom.DTypeError),
        ({"x": np.zeros((2, 3), object)}, loom.DTypeError),
        ({"x": np.zeros((2, 4), np.float32)}, loom.ShapeError),
        ({"x": np.zeros((3,), np.float32)}, loom.ShapeError),
        ({}, loom.Error),
        ({"y": np.zeros((2, 3), np.float32)}, loom.Error),
        ({1: np.zeros((2, 3), np.float32)}, loom.InvalidValueError),
    ],
    ids=lambda v: repr(v)[:40],
)
def test_bad_feeds_raise_and_the_executable_still_works(feeds, error):
    exe = make_exe()
    with pytest.raises(error):
        exe.run(feeds)
    good = np.ones((2, 3), np.float32)
    np.testing.assert_array_equal(exe.run({"x": good})[0], good * 2)


def test_bad_run_arguments():
    exe = make_exe()
    with pytest.raises(loom.InvalidValueError):
        exe.run([np.ones((1, 3), np.float32)])
    with pytest.raises(loom.InvalidValueError, match="output"):
        exe.run({"x": np.ones((1, 3), np.float32)}, output="jax")


def test_feed_error_names_the_feed_and_dtypes():
    exe = make_exe()
    with pytest.raises(loom.DTypeError) as info:
        exe.run({"x": np.zeros((2, 3), np.int64)})
    assert "'x'" in str(info.value) and "i64" in str(info.value) and "f32" in str(info.value)


def test_odd_arrays_do_not_crash(rng):
    exe = make_exe()
    big_endian = np.arange(6, dtype=">f4").reshape(2, 3)
    np.testing.assert_array_equal(exe.run({"x": big_endian})[0], big_endian * 2)
    empty = np.zeros((0, 3), np.float32)
    assert exe.run({"x": empty})[0].shape == (0, 3)
    readonly = np.ones((2, 3), np.float32)
    readonly.setflags(write=False)
    np.testing.assert_array_equal(exe.run({"x": readonly})[0], readonly * 2)
    fortran = np.asfortranarray(random_array(rng, (4, 3)))
    np.testing.assert_array_equal(exe.run({"x": fortran})[0], fortran * 2)


def run_with_timeout(fn, seconds=60):
    """Calls fn in a daemon thread; a deadlock fails the test instead of hanging the run."""
    result = {}

    def target():
        try:
            result["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - re-raised below
            result["error"] = e

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "deadlock: Loom was called back from a conversion"
    if "error" in result:
        raise result["error"]
    return result["value"]


def test_conversions_may_call_back_into_loom():
    g = loom.Graph()
    x = g.placeholder("x", [2])
    w = g.variable("w", np.full(2, 3.0, np.float32))
    exe = loom.compile(g, outputs=[x + w])
    store = exe.variables

    class Lazy:
        """An array computed with Loom when it is converted."""

        def __init__(self, value):
            self.value = value

        def __array__(self, dtype=None, copy=None):
            store.get("w")
            return exe.run({"x": np.full(2, self.value, np.float32)})[0]

    def calls():
        got = exe.run({"x": Lazy(1.0)})[0]
        np.testing.assert_array_equal(got, [7.0, 7.0])  # (1 + 3) + 3
        store["w"] = Lazy(1.0)
        np.testing.assert_array_equal(store["w"], [4.0, 4.0])
        store.declare("v", Lazy(0.0))
        np.testing.assert_array_equal(store["v"], [4.0, 4.0])
        return True

    assert run_with_timeout(calls)


def test_memory_cannot_be_freed_under_loom():
    buffer = mmap.mmap(-1, 4 * 6)
    array = np.frombuffer(buffer, np.float32).reshape(2, 3)
    data = loom.tensor_data(array)
    del array
    gc.collect()
    with pytest.raises(BufferError):  # the mapping is still exported to Loom
        buffer.close()
    assert data.numpy().shape == (2, 3)
    del data
    gc.collect()
    buffer.close()


def test_a_dlpack_capsule_is_used_once():
    a = np.ones(3, np.float32)
    capsule = a.__dlpack__()
    loom.tensor_data(capsule)
    with pytest.raises(loom.Error):
        loom.tensor_data(capsule)


def test_graph_and_executable_outlive_their_python_handles(rng):
    g = loom.Graph()
    x = g.placeholder("x", [3])
    y = loom.exp(x)
    del g
    gc.collect()
    exe = loom.compile(y.graph, outputs=[y])
    del x, y
    gc.collect()
    a = random_array(rng, (3,))
    np.testing.assert_allclose(exe.run({"x": a})[0], np.exp(a), rtol=1e-6)


torch = torch_or_none()


@pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
def test_odd_torch_tensors():
    exe = make_exe()
    # Loom only reads its feeds, so a tensor that needs a gradient (a Parameter) is fine.
    weight = torch.nn.Parameter(torch.ones(2, 3))
    np.testing.assert_array_equal(exe.run({"x": weight})[0], np.full((2, 3), 2.0))
    freed = torch.ones(2, 3)
    freed.untyped_storage().resize_(0)
    with pytest.raises(loom.InvalidValueError, match="no memory"):
        exe.run({"x": freed})
    with pytest.raises(loom.DTypeError):
        exe.run({"x": torch.ones(2, 3, dtype=torch.float64)})
