"""Shape, slice and position ops, and Tensor indexing, against NumPy."""

import numpy as np
import pytest
from conftest import FLOAT_DTYPES, as_f64, assert_close, random_array, run_graph

import loom

DTYPE_IDS = lambda d: d.name  # noqa: E731


@pytest.mark.parametrize("dtype", FLOAT_DTYPES + [loom.int32], ids=DTYPE_IDS)
def test_reshape_transpose_permute_broadcast(rng, dtype):
    a = random_array(rng, (2, 3, 5), dtype)
    g = loom.Graph()
    x = g.placeholder("x", a.shape, dtype)
    outs = run_graph(
        g,
        [loom.reshape(x, [6, -1]), x.reshape([5, 6]), loom.transpose(x, [2, 0, 1]),
         loom.transpose(x), x.T, loom.permute(x, [1, 0, 2]),
         loom.broadcast_to(loom.reshape(x, [2, 1, 3, 5]), [2, 4, 3, 5])],
        {"x": a},
    )
    wants = [a.reshape(6, -1), a.reshape(5, 6), a.transpose(2, 0, 1), np.swapaxes(a, -1, -2),
             np.swapaxes(a, -1, -2), a.transpose(1, 0, 2),
             np.broadcast_to(a.reshape(2, 1, 3, 5), (2, 4, 3, 5))]
    for got, want in zip(outs, wants):
        np.testing.assert_array_equal(as_f64(got), as_f64(want))


def test_reshape_with_symbols(rng):
    g = loom.Graph()
    x = g.placeholder("x", ["seq", 8])
    y = loom.reshape(x, ["seq", 2, 4])
    assert y.shape == ("seq", 2, 4)
    exe = loom.compile(g, outputs=[y])
    a = random_array(rng, (3, 8))
    np.testing.assert_array_equal(exe.run({"x": a})[0], a.reshape(3, 2, 4))


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_concat_and_split(rng, dtype, axis):
    shapes = [(2, 3, 4), (2, 3, 4), (2, 3, 4)]
    arrays = [random_array(rng, s, dtype) for s in shapes]
    g = loom.Graph()
    xs = [g.placeholder(f"x{i}", s, dtype) for i, s in enumerate(shapes)]
    joined = loom.concat(xs, axis)
    n = arrays[0].shape[axis]
    parts = loom.split(joined, [1, 3 * n - 1], axis)
    equal = loom.split(joined, 3, axis)
    feeds = {f"x{i}": a for i, a in enumerate(arrays)}
    got = run_graph(g, [joined] + parts + equal, feeds)
    want = np.concatenate(arrays, axis)
    np.testing.assert_array_equal(as_f64(got[0]), as_f64(want))
    for g_part, w_part in zip(got[1:3], np.split(want, [1], axis)):
        np.testing.assert_array_equal(as_f64(g_part), as_f64(w_part))
    for g_part, w_part in zip(got[3:], np.split(want, 3, axis)):
        np.testing.assert_array_equal(as_f64(g_part), as_f64(w_part))


@pytest.mark.parametrize(
    "axes,starts,stops,steps",
    [([0], [1], [3], None), ([1], [-3], [100], [2]), ([0, 2], [0, 1], [-1, 4], [2, 1]),
     ([2], [5], [2], None)],
    ids=str,
)
def test_static_slice(rng, axes, starts, stops, steps):
    a = random_array(rng, (4, 7, 5))
    g = loom.Graph()
    x = g.placeholder("x", a.shape)
    got = run_graph(g, loom.slice(x, axes, starts, stops, steps), {"x": a})
    index = [slice(None)] * 3
    for i, axis in enumerate(axes):
        index[axis] = slice(starts[i], stops[i], steps[i] if steps else 1)
    np.testing.assert_array_equal(got, a[tuple(index)])


INDEXES = [
    (1,), (-1,), (slice(1, 3),), (slice(None, None, 2),), (Ellipsis, 0), (0, Ellipsis, 1),
    (None, 1), (slice(None), None, slice(-2, None)), (1, 2, 3), (Ellipsis,),
    (slice(-100, 100), -2),
]


@pytest.mark.parametrize("index", INDEXES, ids=str)
def test_getitem_matches_numpy(rng, index):
    a = random_array(rng, (3, 4, 5))
    g = loom.Graph()
    x = g.placeholder("x", a.shape)
    y = x[index]
    want = a[index]
    assert y.shape == want.shape
    got = run_graph(g, y, {"x": a})
    np.testing.assert_array_equal(got, want)


def test_getitem_on_symbolic_dims(rng):
    g = loom.Graph()
    x = g.placeholder("x", ["seq", 6])
    y = x[-1]
    z = x[:, 1:4]
    exe = loom.compile(g, outputs=[y, z])
    for n in (1, 5):
        a = random_array(rng, (n, 6))
        got_y, got_z = exe.run({"x": a})
        np.testing.assert_array_equal(got_y, a[-1])
        np.testing.assert_array_equal(got_z, a[:, 1:4])


def test_getitem_errors():
    g = loom.Graph()
    x = g.placeholder("x", [3, 4])
    with pytest.raises(IndexError, match="out of range"):
        x[3]
    with pytest.raises(IndexError, match="too many indices"):
        x[0, 0, 0]
    with pytest.raises(IndexError, match="not supported"):
        x["a"]
    with pytest.raises(IndexError, match="single ellipsis"):
        x[..., ...]
    with pytest.raises(loom.InvalidValueError):
        x[::-1]  # Loom's slices step forward
    with pytest.raises(TypeError, match="not iterable"):
        list(x)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("start_dtype", [loom.int32, loom.int64], ids=DTYPE_IDS)
def test_dynamic_slice_clamps(rng, dtype, start_dtype):
    a = random_array(rng, (6, 8), dtype)
    g = loom.Graph()
    x = g.placeholder("x", a.shape, dtype)
    starts = g.placeholder("starts", [2], start_dtype)
    y = loom.slice(x, starts, [0, 1], [2, 3])
    y2 = loom.dynamic_slice(x, starts, [0, 1], [2, 3])
    exe = loom.compile(g, outputs=[y, y2])
    np_start = loom.to_numpy_dtype(start_dtype)
    for s0, s1 in [(0, 0), (3, 4), (5, 7), (-1, 100)]:
        got, got2 = exe.run({"x": a, "starts": np.array([s0, s1], np_start)})
        c0, c1 = min(max(s0, 0), 6 - 2), min(max(s1, 0), 8 - 3)
        np.testing.assert_array_equal(as_f64(got), as_f64(a[c0:c0 + 2, c1:c1 + 3]))
        np.testing.assert_array_equal(as_f64(got2), as_f64(got))


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=DTYPE_IDS)
def test_slice_update_static_and_dynamic(rng, dtype):
    a = random_array(rng, (5, 7), dtype)
    u = random_array(rng, (2, 3), dtype)
    g = loom.Graph()
    x, up = g.placeholder("x", a.shape, dtype), g.placeholder("u", u.shape, dtype)
    starts = g.placeholder("starts", [2], loom.int64)
    static = loom.slice_update(x, up, [1, 2])
    dynamic = loom.slice_update(x, up, starts)
    exe = loom.compile(g, outputs=[static, dynamic])
    got_static, got_dynamic = exe.run({"x": a, "u": u, "starts": np.array([4, 6])})
    want = a.copy()
    want[1:3, 2:5] = u
    np.testing.assert_array_equal(as_f64(got_static), as_f64(want))
    clamped = a.copy()
    clamped[3:5, 4:7] = u  # starts clamp to [dim - update dim]
    np.testing.assert_array_equal(as_f64(got_dynamic), as_f64(clamped))


@pytest.mark.parametrize("index_dtype", [loom.int32, loom.int64], ids=DTYPE_IDS)
@pytest.mark.parametrize("axis", [0, 1])
def test_gather(rng, index_dtype, axis):
    table = random_array(rng, (6, 5, 3))
    n = table.shape[axis]
    idx = np.array([[0, n - 1], [2, n + 3]], loom.to_numpy_dtype(index_dtype))  # n + 3: out of range
    g = loom.Graph()
    t = g.placeholder("t", table.shape)
    i = g.placeholder("i", idx.shape, index_dtype)
    outs = [loom.gather(t, i, axis)] + ([t[i]] if axis == 0 else [])
    got = run_graph(g, outs, {"t": table, "i": idx})
    safe = np.where(idx < n, idx, 0)
    want = np.take(table, safe, axis=axis)
    mask_shape = [1] * want.ndim
    mask_shape[axis:axis + 2] = idx.shape
    want = np.where((idx < n).reshape(mask_shape), want, 0)
    for g_out in got:
        np.testing.assert_array_equal(g_out, want)


@pytest.mark.parametrize("start,stop,step,dtype",
                         [(0, 5, 1, loom.int64), (2, 11, 3, loom.int32), (0.5, 2, 0.25, loom.float32)])
def test_arange(start, stop, step, dtype):
    g = loom.Graph()
    got1, got2 = run_graph(g, [loom.arange(g, start, stop, step, dtype),
                               g.arange(start, stop, step, dtype)])
    want = np.arange(start, stop, step).astype(loom.to_numpy_dtype(dtype))
    np.testing.assert_array_equal(got1, want)
    np.testing.assert_array_equal(got2, want)


def _rope(x, offset, base, interleaved, dims, scale):
    x = as_f64(x)
    s, d = x.shape[-2], x.shape[-1]
    dims = dims or d
    out = x.copy()
    pos = (offset + np.arange(s)) * scale
    inv = base ** (-2.0 * np.arange(dims // 2) / dims)
    theta = pos[:, None] * inv[None, :]
    cos, sin = np.cos(theta), np.sin(theta)
    if interleaved:
        i0, i1 = np.arange(0, dims, 2), np.arange(1, dims, 2)
    else:
        i0, i1 = np.arange(dims // 2), np.arange(dims // 2) + dims // 2
    x0, x1 = x[..., i0], x[..., i1]
    out[..., i0] = x0 * cos - x1 * sin
    out[..., i1] = x0 * sin + x1 * cos
    return out


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("interleaved", [False, True])
@pytest.mark.parametrize("dims,scale", [(0, 1.0), (8, 0.5)])
def test_rope(rng, dtype, interleaved, dims, scale):
    a = random_array(rng, (2, 5, 12), dtype)
    g = loom.Graph()
    x = g.placeholder("x", a.shape, dtype)
    offset = g.placeholder("offset", [], loom.int32)
    y = loom.rope(x, offset, base=10000.0, interleaved=interleaved, dims=dims, scale=scale)
    exe = loom.compile(g, outputs=[y])
    for off in (0, 7):
        (got,) = exe.run({"x": a, "offset": np.array(off, np.int32)})
        assert_close(got, _rope(a, off, 10000.0, interleaved, dims, scale), dtype, "rope")
