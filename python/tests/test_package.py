"""The package itself: every op of include/loom/ops.h is there, with docstrings and
signatures for help(), and the type stubs are installed beside the module."""

import pathlib
import pydoc
import re

import loom

ROOT = pathlib.Path(__file__).resolve().parents[2]


def ops_h_functions():
    """The free functions of include/loom/ops.h, by name."""
    text = (ROOT / "include" / "loom" / "ops.h").read_text()
    names = set(re.findall(r"^(?:Tensor|std::vector<Tensor>) (\w+)\(", text, re.M))
    return names - {"operator"}


def test_every_op_function_is_bound():
    names = ops_h_functions()
    assert len(names) > 40
    missing = sorted(n for n in names if not callable(getattr(loom, n, None)))
    assert not missing, f"ops.h functions missing from the loom package: {missing}"


def test_registry_ops_are_reachable():
    # Ops without a dedicated function (e.g. ones other families add later) are still
    # reachable through add_node; every registered name shows in op_names().
    names = loom.op_names()
    assert "matmul" in names and "slice_update" in names


def test_docstrings_and_signatures_show_in_help():
    text = pydoc.render_doc(loom.matmul, renderer=pydoc.plaintext)
    assert "transpose_a" in text and "batch dims broadcast" in text
    assert "placeholder" in pydoc.render_doc(loom.Graph, renderer=pydoc.plaintext)
    assert loom.Executable.run.__doc__ and "output='torch'" in loom.Executable.run.__doc__


def test_type_stubs_are_installed():
    package = pathlib.Path(loom.__file__).parent
    stub = package / "_loom.pyi"
    assert stub.is_file(), f"no stubs at {stub}"
    text = stub.read_text()
    assert "def matmul(a: Tensor, b: Tensor" in text
    assert "class Executable" in text
    assert (package / "py.typed").is_file()


def test_dtype_conversions():
    import ml_dtypes
    import numpy as np

    assert loom.dtype("f16") == loom.float16 == loom.dtype(np.float16) == loom.dtype("float16")
    assert loom.dtype(ml_dtypes.bfloat16) == loom.bfloat16
    assert loom.dtype(np.dtype("int64")) == loom.int64
    assert loom.dtype(bool) == loom.bool_
    assert loom.to_numpy_dtype(loom.bfloat16) == np.dtype(ml_dtypes.bfloat16)
    assert loom.to_numpy_dtype("bool") == np.dtype(np.bool_)
    assert loom.float16.is_floating_point and not loom.int8.is_floating_point
    assert loom.int4.itemsize_bits == 4
