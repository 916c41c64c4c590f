"""Op schemas from Python: loom.op_schema, docstrings made from them, defaults that agree
with them, and add_node checking attributes against them."""

import numpy as np
import pytest

import loom


def test_schema_lookup():
    s = loom.op_schema("layer_norm")
    assert [i.name for i in s.inputs] == ["x", "weight", "bias"]
    assert s.inputs[1].optional and s.has_decomposition
    eps = s.attribute("eps")
    assert eps.type == "float" and eps.default == 1e-5 and eps.min == 0
    assert loom.op_schema("arange").attribute("stop").required
    assert loom.op_schema("arange").attribute("dtype").default == loom.int64
    assert "argmax" in loom.op_names()
    with pytest.raises(loom.UnsupportedError, match="no_such_op"):
        loom.op_schema("no_such_op")


def test_docstrings_come_from_the_schema():
    for name in ["softmax", "layer_norm", "rms_norm", "rope", "argmax", "gather", "cast", "add"]:
        doc = getattr(loom, name).__doc__
        schema = loom.op_schema(name)
        assert schema.doc in doc, name
        for attr in schema.attributes:
            assert str(attr) in doc, (name, attr.name)


def default_text(spec):
    """The default as the graph dump writes it ("eps: float = 1e-05 ..." -> "1e-05")."""
    return str(spec).split(" = ", 1)[1].split(" ", 1)[0]


def test_function_defaults_agree_with_the_schema():
    g = loom.Graph()
    x = g.placeholder("x", [2, 3, 8])
    offset = g.placeholder("offset", [], loom.int64)
    idx = g.placeholder("idx", [2], loom.int64)
    made = {
        "softmax": loom.softmax(x),
        "log_softmax": loom.log_softmax(x),
        "layer_norm": loom.layer_norm(x),
        "rms_norm": loom.rms_norm(x),
        "argmax": loom.argmax(x),
        "gather": loom.gather(x, idx),
        "rope": loom.rope(x, offset),
        "arange": loom.arange(g, 0, 4),
    }
    dump = g.dump()
    def line_of(op):
        for line in dump.splitlines():
            rhs = line.split(" = ", 1)[-1]
            if rhs.startswith(op + "(") or rhs.startswith(op + " "):
                return line
        raise AssertionError(f"{op} not in {dump}")

    lines = {op: line_of(op) for op in made}
    checked = 0
    for op, line in lines.items():
        for spec in loom.op_schema(op).attributes:
            if spec.default is None or spec.name == "start":
                continue
            assert f"{spec.name}={default_text(spec)}" in line, (op, spec.name, line)
            checked += 1
    assert checked >= 12


def test_add_node_checks_attributes():
    g = loom.Graph()
    x = g.placeholder("x", [3, 2])
    with pytest.raises(loom.InvalidValueError, match="unknown attribute 'axsi'.*axis"):
        loom.add_node("argmax", [x], {"axsi": 0})
    with pytest.raises(loom.InvalidValueError, match="64-bit"):
        loom.add_node("argmax", [x], {"axis": 2**70})
    with pytest.raises(loom.InvalidValueError, match="'axis' must be an int"):
        loom.add_node("argmax", [x], {"axis": 1.5})
    with pytest.raises(loom.InvalidValueError, match="not both"):
        loom.add_node("split", [x], {"sizes": [1, 1], "parts": 2, "axis": 1})
    with pytest.raises(loom.DTypeError, match="f31"):
        loom.add_node("cast", [x], {"dtype": "f31"})
    # NumPy integers, ints for floats and dtype names are taken.
    (y,) = loom.add_node("argmax", [x], {"axis": np.int64(1)})
    (c,) = loom.add_node("cast", [x], {"dtype": "f16"})
    (r,) = loom.add_node("rms_norm", [x], {"eps": 1})
    assert y.shape == (3,) and c.dtype == loom.float16 and r.shape == (3, 2)


def test_argmax_with_the_default_axis_runs():
    g = loom.Graph()
    x = g.placeholder("x", [3, 2])
    (y,) = loom.add_node("argmax", [x])
    data = np.array([[1, 9], [7, 2], [3, 4]], np.float32)
    devices = ["cpu"] + (["cuda"] if loom.cuda_available() else [])
    for device in devices:
        (out,) = loom.compile(g, outputs=[y], device=device).run({"x": data})
        np.testing.assert_array_equal(out, np.argmax(data, axis=0))


def test_optional_inputs_by_name():
    g = loom.Graph()
    x = g.placeholder("x", [2, 4])
    b = g.placeholder("b", [4])
    (by_name,) = g.add_node("layer_norm", {"x": x, "bias": b})
    (by_hole,) = loom.add_node("layer_norm", [x, None, b])
    by_function = loom.layer_norm(x, bias=b)
    xd = np.random.default_rng(0).standard_normal((2, 4)).astype(np.float32)
    bd = np.random.default_rng(1).standard_normal(4).astype(np.float32)
    want = (xd - xd.mean(-1, keepdims=True)) / np.sqrt(xd.var(-1, keepdims=True) + 1e-5) + bd
    outs = loom.compile(g, outputs=[by_name, by_hole, by_function]).run({"x": xd, "b": bd})
    for out in outs:
        np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5)
    with pytest.raises(loom.InvalidValueError, match="no input 'scale'"):
        g.add_node("layer_norm", {"x": x, "scale": b})
