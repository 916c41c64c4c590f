"""The fuse_attention pass from Python: decomposed attention, as an imported model writes it,
compiles to one scaled_dot_product_attention and gives the values of the same graph compiled
with disabled_passes=["fuse_attention"]."""

import math
import re

import numpy as np
import pytest
from conftest import FLOAT_DTYPES, as_f64, random_array

import loom

# The unfused graph rounds scores and probabilities to the dtype; the fused op keeps them f32.
TOL = {loom.float32: 1e-5, loom.float16: 4e-3, loom.bfloat16: 3e-2}


def count(dump, op):
    return len(re.findall(r"= " + op + r"\(", dump.split("plan")[0]))


def repeat_kv(x, b, hkv, groups, s, d):
    x5 = x.reshape((b, hkv, 1, s, d))
    return loom.broadcast_to(x5, (b, hkv, groups, s, d)).reshape((b, hkv * groups, s, d))


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize("mask", [None, "float", "bool"])
def test_decomposed_attention_is_fused(rng, dtype, mask):
    b, hq, hkv, sq, skv, d = 2, 8, 2, 5, 11, 16
    g = loom.Graph()
    q = g.placeholder("q", (b, hq, sq, d), dtype)
    k = g.placeholder("k", (b, skv, hkv, d), dtype)  # [B, S, H, D], as projections give it
    v = g.placeholder("v", (b, hkv, skv, d), dtype)
    feeds = {"q": random_array(rng, (b, hq, sq, d), dtype, -1, 1),
             "k": random_array(rng, (b, skv, hkv, d), dtype, -1, 1),
             "v": random_array(rng, (b, hkv, skv, d), dtype, -1, 1)}
    keys = repeat_kv(loom.permute(k, [0, 2, 1, 3]), b, hkv, hq // hkv, skv, d)
    values = repeat_kv(v, b, hkv, hq // hkv, skv, d)
    scores = (q @ keys.transpose([0, 1, 3, 2])) / math.sqrt(d)
    if mask == "float":
        m = random_array(rng, (1, 1, sq, skv), dtype, -2, 2)
        m[..., 1::4] = -np.inf
        feeds["mask"] = m
        scores = scores + g.placeholder("mask", m.shape, dtype)
    elif mask == "bool":
        keep = rng.uniform(size=(b, 1, 1, skv)) > 0.3
        keep[..., 0] = True
        feeds["mask"] = keep
        scores = loom.where(g.placeholder("mask", keep.shape, loom.bool_), scores, -math.inf)
    y = loom.softmax(scores, -1) @ values

    fused = loom.compile(g, outputs=[y], keep_pass_dumps=True)
    plain = loom.compile(g, outputs=[y], disabled_passes=["fuse_attention"])
    assert count(fused.dump(), "scaled_dot_product_attention") == 1, fused.dump()
    assert count(fused.dump(), "softmax") == 0
    assert count(fused.dump(), "broadcast_to") == 0
    assert count(plain.dump(), "scaled_dot_product_attention") == 0
    assert "fuse_attention" in [name for name, _ in fused.pass_dumps]
    got, want = as_f64(fused.run(feeds)[0]), as_f64(plain.run(feeds)[0])
    tol = TOL[loom.dtype(dtype)]
    np.testing.assert_allclose(got, want, atol=tol, rtol=tol)


def test_scores_that_are_an_output_stay_unfused(rng):
    g = loom.Graph()
    q = g.placeholder("q", (1, 2, 3, 8))
    k = g.placeholder("k", (1, 2, 4, 8))
    v = g.placeholder("v", (1, 2, 4, 8))
    scores = (q @ k.T) * 0.25
    y = loom.softmax(scores, -1) @ v
    exe = loom.compile(g, outputs=[y, scores])
    assert count(exe.dump(), "scaled_dot_product_attention") == 0
    assert count(exe.dump(), "softmax") == 1
