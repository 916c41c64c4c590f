"""loom.scaled_dot_product_attention against a NumPy reference (float64): GQA, causal
alignment to the end of the keys, masks, run-time kv_len, sliding window, keyword errors."""

import numpy as np
import pytest
from conftest import FLOAT_DTYPES, as_f64, random_array, run_graph

import loom

# Elementwise: output rounding of the dtype plus f32 accumulation.
ATOL = {loom.float32: 2e-5, loom.float16: 1e-3, loom.bfloat16: 8e-3}


def reference(q, k, v, scale=None, causal=False, mask=None, kv_len=None, window=0):
    q, k, v = as_f64(q), as_f64(k), as_f64(v)
    b, hq, sq, d = q.shape
    hkv, skv = k.shape[1], k.shape[2]
    k = np.repeat(k, hq // hkv, axis=1)
    v = np.repeat(v, hq // hkv, axis=1)
    scale = 1 / np.sqrt(d) if scale is None else scale
    scores = np.einsum("bhqd,bhkd->bhqk", q, k) * scale
    visible = np.ones((b, hq, sq, skv), bool)
    lengths = np.full(b, skv) if kv_len is None else np.clip(np.broadcast_to(kv_len, b), 0, skv)
    j = np.arange(skv)
    for bi in range(b):
        pos = np.arange(sq)[:, None] + lengths[bi] - sq
        ok = j[None, :] < lengths[bi]
        if causal:
            ok = ok & (j[None, :] <= pos)
        if window:
            ok = ok & (j[None, :] > pos - window)
        visible[bi] &= ok
    if mask is not None:
        if mask.dtype == np.bool_:
            visible &= np.broadcast_to(mask, visible.shape)
        else:
            scores = scores + as_f64(mask)
    scores = np.where(visible, scores, -np.inf)
    top = scores.max(-1, keepdims=True)
    e = np.where(np.isfinite(top), np.exp(scores - np.where(np.isfinite(top), top, 0)), 0)
    total = e.sum(-1, keepdims=True)
    p = np.divide(e, total, out=np.zeros_like(e), where=total > 0)
    return p @ v


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize(
    "case",
    [
        dict(hq=4, hkv=4, sq=7, skv=7, d=64, causal=True),
        dict(hq=8, hkv=2, sq=5, skv=33, d=80, causal=True, kv_len=[20, 33]),
        dict(hq=8, hkv=1, sq=1, skv=70, d=128, kv_len=[70, 3], mask="bool"),
        dict(hq=2, hkv=1, sq=9, skv=40, d=96, causal=True, window=8, mask="float"),
        dict(hq=4, hkv=2, sq=3, skv=11, d=16, scale=0.3),
    ],
    ids=str,
)
def test_matches_numpy(rng, dtype, case):
    b, d = 2, case["d"]
    q = random_array(rng, (b, case["hq"], case["sq"], d), dtype, -1, 1)
    k = random_array(rng, (b, case["hkv"], case["skv"], d), dtype, -1, 1)
    v = random_array(rng, (b, case["hkv"], case["skv"], d), dtype, -1, 1)
    g = loom.Graph()
    inputs = {"q": q, "k": k, "v": v}
    kwargs = dict(causal=case.get("causal", False), window=case.get("window", 0),
                  scale=case.get("scale"))
    mask = None
    if case.get("mask") == "bool":
        mask = rng.uniform(size=(b, 1, case["sq"], case["skv"])) > 0.2
        kwargs["mask"] = g.placeholder("mask", mask.shape, loom.bool_)
    elif case.get("mask") == "float":
        mask = random_array(rng, (case["sq"], case["skv"]), dtype, -3, 3)
        kwargs["mask"] = g.placeholder("mask", mask.shape, dtype)
    if mask is not None:
        inputs["mask"] = mask
    kv_len = None
    if "kv_len" in case:
        kv_len = np.array(case["kv_len"], np.int32)
        kwargs["kv_len"] = g.placeholder("kv_len", kv_len.shape, loom.int32)
        inputs["kv_len"] = kv_len
    y = loom.scaled_dot_product_attention(
        g.placeholder("q", q.shape, dtype), g.placeholder("k", k.shape, dtype),
        g.placeholder("v", v.shape, dtype), **kwargs)
    got = as_f64(run_graph(g, y, inputs))
    want = reference(q, k, v, kwargs["scale"], kwargs["causal"], mask, kv_len, kwargs["window"])
    atol = ATOL[loom.dtype(dtype)]
    np.testing.assert_allclose(got, want, atol=atol, rtol=atol)


def test_errors():
    g = loom.Graph()
    q = g.placeholder("q", (1, 3, 4, 8))
    k = g.placeholder("k", (1, 2, 4, 8))
    with pytest.raises(loom.ShapeError, match="multiple of kv heads"):
        loom.scaled_dot_product_attention(q, k, k)
    with pytest.raises(TypeError):
        loom.scaled_dot_product_attention(q, k, k, True)  # options are keyword-only


def numpy_quantize_kv(x):
    """Symmetric int8 per row of D, as quantize_kv defines it (float32 arithmetic)."""
    x = np.asarray(x, np.float32)
    scale = (np.abs(x).max(-1) / np.float32(127)).astype(np.float32)
    safe = np.where(scale > 0, scale, np.float32(1))[..., None]
    # np.round rounds half to even; quantize_kv rounds half away from zero.
    q = x / safe
    codes = np.where(scale[..., None] > 0, np.sign(q) * np.floor(np.abs(q) + 0.5), 0)
    return np.clip(codes, -127, 127).astype(np.int8), scale


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize("sq,hq,causal", [(1, 8, True), (6, 2, True), (3, 8, False)], ids=str)
def test_int8_kv_cache(rng, dtype, sq, hq, causal):
    """quantize_kv's codes and scales against NumPy, and attention over the int8 cache against
    the NumPy reference over the dequantized values (only f32 accumulation differs)."""
    b, hkv, skv, d = 2, 2, 37, 64
    q = random_array(rng, (b, hq, sq, d), dtype, -1, 1)
    k = random_array(rng, (b, hkv, skv, d), dtype, -1, 1)
    v = random_array(rng, (b, hkv, skv, d), dtype, -1, 1)
    kv_len = np.array([skv, 20], np.int32)
    g = loom.Graph()
    kq, ks = loom.quantize_kv(g.placeholder("k", k.shape, dtype))
    vq, vs = loom.quantize_kv(g.placeholder("v", v.shape, dtype))
    assert kq.dtype == loom.int8 and ks.dtype == loom.float32 and tuple(ks.shape) == (b, hkv, skv)
    y = loom.scaled_dot_product_attention(
        g.placeholder("q", q.shape, dtype), kq, vq, causal=causal, k_scale=ks, v_scale=vs,
        kv_len=g.placeholder("kv_len", (b,), loom.int32))
    codes_k, scale_k, codes_v, scale_v, got = run_graph(
        g, [kq, ks, vq, vs, y], {"q": q, "k": k, "v": v, "kv_len": kv_len})
    want_codes, want_scale = numpy_quantize_kv(as_f64(k))
    np.testing.assert_array_equal(codes_k, want_codes)
    np.testing.assert_array_equal(scale_k, want_scale)
    err = np.abs(as_f64(k) - scale_k[..., None].astype(np.float64) * codes_k)
    # scale / 2, plus the f32 rounding of x / scale (< 128 * 2^-24 of scale).
    assert (err <= scale_k[..., None] * (0.5 + 1e-5)).all()
    dk = scale_k[..., None].astype(np.float64) * codes_k
    dv = scale_v[..., None].astype(np.float64) * codes_v
    want = reference(q, dk, dv, causal=causal, kv_len=kv_len)
    atol = ATOL[loom.dtype(dtype)]
    np.testing.assert_allclose(as_f64(got), want, atol=atol, rtol=atol)


def test_int8_kv_errors():
    g = loom.Graph()
    q = g.placeholder("q", (1, 4, 1, 8))
    k = g.placeholder("k", (1, 2, 5, 8), loom.int8)
    s = g.placeholder("s", (1, 2, 5))
    with pytest.raises(loom.Error, match="need k_scale and v_scale"):
        loom.scaled_dot_product_attention(q, k, k)
    with pytest.raises(loom.Error, match="go with i8"):
        loom.scaled_dot_product_attention(q, q, q, k_scale=s, v_scale=s)
