"""Packages and the viewer from Python: exe.save / loom.load round trips, Graph.save /
loom.load_graph, damaged files raise loom.IOError; exe.view writes a self-contained page whose
embedded data matches the graph (checked structurally), and, where Debian's chromium is
installed (scripts/setup.sh), the page runs in headless Chromium without console errors,
draws one box per node, shows a clicked node's details, and a screenshot is saved."""

import json
import os
import pathlib
import re
import shutil
import subprocess

import numpy as np
import pytest

import loom


def small_graph():
    g = loom.Graph()
    x = g.placeholder("x", ["n", 4])
    w = g.variable("w", np.linspace(-1, 1, 12, dtype=np.float32).reshape(4, 3))
    b = g.constant(np.array([0.1, -0.2, 0.3], np.float32))
    y = loom.softmax(loom.relu(x @ w + b))
    return g, y


def reference(x):
    w = np.linspace(-1, 1, 12, dtype=np.float32).reshape(4, 3).astype(np.float64)
    h = np.maximum(x.astype(np.float64) @ w + np.array([0.1, -0.2, 0.3]), 0)
    e = np.exp(h - h.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_save_load_round_trip(tmp_path):
    g, y = small_graph()
    exe = loom.compile(g, outputs=[y])
    x = np.random.default_rng(1).standard_normal((5, 4)).astype(np.float32)
    (want,) = exe.run({"x": x})
    path = str(tmp_path / "model.loompkg")
    exe.save(path)
    loaded = loom.load(path)
    assert "from the package" in loaded.package_note
    (got,) = loaded.run({"x": x})
    np.testing.assert_array_equal(got, want)
    np.testing.assert_allclose(got, reference(x), rtol=1e-5, atol=1e-6)


def test_saved_graph_compiles_later(tmp_path):
    g, y = small_graph()
    path = str(tmp_path / "graph.loomgraph")
    g.save(path, [y])
    graph, outputs = loom.load_graph(path)
    exe = loom.compile(graph, outputs=outputs)
    x = np.random.default_rng(2).standard_normal((3, 4)).astype(np.float32)
    np.testing.assert_allclose(exe.run({"x": x})[0], reference(x), rtol=1e-5, atol=1e-6)
    with pytest.raises(loom.InvalidValueError, match="not a compiled package"):
        loom.load(path)


def test_damaged_package_raises_io_error(tmp_path):
    g, y = small_graph()
    path = tmp_path / "model.loompkg"
    loom.compile(g, outputs=[y]).save(str(path))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x40
    path.write_bytes(bytes(data))
    with pytest.raises(loom.IOError, match="checksum"):
        loom.load(str(path))
    path.write_bytes(bytes(data[:40]))
    with pytest.raises(loom.IOError, match="body size"):
        loom.load(str(path))


DATA = pathlib.Path(__file__).resolve().parents[2] / "tests" / "data"


def read_safetensors(path):
    """The tensors of a safetensors file, read by hand (8-byte header length, JSON header)."""
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    dtypes = {"F32": np.float32, "I32": np.int32}
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        data = np.frombuffer(raw[8 + n + begin : 8 + n + end], dtypes[info["dtype"]])
        out[name] = data.reshape(info["shape"])
    return out


def test_package_referencing_its_weight_file(tmp_path):
    # The weight is tensor "a" of tests/data/small.safetensors (written by the safetensors
    # package): the package references the file instead of holding the bytes.
    weights = tmp_path / "weights.safetensors"
    shutil.copy(DATA / "small.safetensors", weights)
    a = read_safetensors(weights)["a"]
    g = loom.Graph()
    x = g.placeholder("x", ["n", 2])
    y = x @ g.variable("w", a) + g.constant(np.array([0.5, -0.5, 2.0], np.float32))
    exe = loom.compile(g, outputs=[y])
    xv = np.random.default_rng(3).standard_normal((4, 2)).astype(np.float32)
    (want,) = exe.run({"x": xv})
    np.testing.assert_allclose(want, xv @ a + [0.5, -0.5, 2.0], rtol=1e-6, atol=1e-6)

    ref, emb = str(tmp_path / "ref.loompkg"), str(tmp_path / "emb.loompkg")
    exe.save(ref, weight_files=[str(weights)])
    exe.save(emb, weight_files=[str(weights)], embed_weights=True)
    assert loom.referenced_files(ref) == ["weights.safetensors"]
    assert loom.referenced_files(emb) == []
    # The 24 weight bytes (and a "defined" byte) give way to a file index and an offset (12
    # bytes) and the table's entry: path, size and checksum (4 + 19 + 8 + 8 bytes).
    assert os.path.getsize(emb) - os.path.getsize(ref) == 24 + 1 - 12 - (4 + 19 + 8 + 8)
    for path in (ref, emb):
        loaded = loom.load(path)
        (got,) = loaded.run({"x": xv})
        np.testing.assert_array_equal(got, want)
    assert "1 weights (0 MiB) read from 1 referenced file" in loom.load(ref).package_note

    # Absolute paths on request.
    exe.save(ref, weight_files=[str(weights)], absolute_paths=True)
    assert loom.referenced_files(ref) == [str(weights)]

    # The file changed (same size), truncated, or gone: loom.IOError naming it.
    raw = weights.read_bytes()
    changed = bytearray(raw)
    changed[-1] ^= 1
    weights.write_bytes(bytes(changed))
    with pytest.raises(loom.IOError, match="weights.safetensors.*checksum differs"):
        loom.load(ref)
    weights.write_bytes(raw[:-1])
    with pytest.raises(loom.IOError, match="saved against"):
        loom.load(ref)
    weights.unlink()
    with pytest.raises(loom.IOError, match="weights.safetensors.*cannot be read"):
        loom.load(ref)
    (got,) = loom.load(emb).run({"x": xv})  # the embedded one needs no file
    np.testing.assert_array_equal(got, want)


def page_data(html):
    m = re.search(r'<script type="application/json" id="loom-data">(.*?)</script>', html, re.S)
    assert m, "no embedded data"
    return json.loads(m.group(1))


def profiled_view(tmp_path):
    g, y = small_graph()
    exe = loom.compile(g, outputs=[y], keep_pass_dumps=True)
    x = np.random.default_rng(3).standard_normal((2, 4)).astype(np.float32)
    times = exe.profile({"x": x})
    path = tmp_path / "graph.html"
    exe.view(str(path))
    return exe, times, path


def test_view_page_is_self_contained_and_matches_the_graph(tmp_path):
    exe, times, path = profiled_view(tmp_path)
    html = path.read_text()
    # Nothing fetched: no external scripts, styles, images or fonts.
    assert not re.search(r'(src|href)\s*=\s*["\']?(https?:)?//', html)
    assert "<link" not in html and "@import" not in html and "url(" not in html
    data = page_data(html)
    names = [s["name"] for s in data["stages"]]
    assert names == ["input"] + loom.pass_names() + ["lowered"]
    # The lowered stage is the graph of exe.dump(): one "%N = op" line per node.
    dump_nodes = re.findall(r"^\s*%(\d+)", exe.dump().split("plan")[0], re.M)
    lowered = data["stages"][-1]["graph"]["nodes"]
    assert sorted(n["id"] for n in lowered) == sorted(int(i) for i in set(dump_nodes))
    # Every kernel step has a plan entry with its kernel, and a profiled time.
    assert len(times) == len(data["plan"]["steps"]) == len(data["profile"])
    assert {t["node"] for t in times} == {int(k) for k in data["plan"]["steps"]}
    assert all(t["ms"] >= 0 for t in times)
    matmul = next(n for n in lowered if n["op"] == "matmul")
    assert data["plan"]["steps"][str(matmul["id"])]["kernel"].startswith("cpu.matmul")
    # The pass that fuses the bias into the matmul changed that node.
    fuse = names.index("fuse_matmul_bias")
    before = {n["id"]: n for n in data["stages"][fuse - 1]["graph"]["nodes"]}
    after = {n["id"]: n for n in data["stages"][fuse]["graph"]["nodes"]}
    assert before.keys() != after.keys() or any(
        before[i]["inputs"] != after[i]["inputs"] for i in after
    )
    # The arena: every buffer inside it.
    for b in data["plan"]["buffers"]:
        assert b["offset"] + b["bytes"] <= data["plan"]["arena_bytes"]
    assert exe._repr_html_().startswith("<iframe")


def test_hostile_names_cannot_end_the_script(tmp_path):
    g = loom.Graph()
    x = g.placeholder("</script><script>alert(1)</script>", [2])
    exe = loom.compile(g, outputs=[loom.relu(x)])
    path = tmp_path / "x.html"
    exe.view(str(path))
    html = path.read_text()
    assert html.count("</script>") == 2  # the data's and the code's own
    assert page_data(html)["stages"][0]["graph"]["nodes"][0]["name"].startswith("</script>")


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (scripts/setup.sh)")
def test_page_in_headless_chromium(tmp_path):
    exe, times, path = profiled_view(tmp_path)
    data = page_data(path.read_text())
    lowered = data["stages"][-1]["graph"]["nodes"]
    matmul = next(n for n in lowered if n["op"] == "matmul")
    url = path.as_uri() + "#select=" + str(matmul["id"])
    common = [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu",
              "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000",
              "--user-data-dir=" + str(tmp_path / "profile")]
    run = subprocess.run(common + ["--dump-dom", url], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    console = [l for l in run.stderr.splitlines() if "CONSOLE" in l or "Uncaught" in l]
    assert not [l for l in console if "rror" in l or "Uncaught" in l], console
    dom = run.stdout
    assert re.search(r'id="node-count">%d nodes<' % len(lowered), dom), dom[:2000]
    assert len(re.findall(r'<g [^>]*class="node[ "]', dom)) == len(lowered)
    # The clicked (#select) node's details: its op, kernel and profiled time.
    details = dom[dom.index('id="details"'):]
    assert 'id="detail-op">matmul' in details
    assert data["plan"]["steps"][str(matmul["id"])]["kernel"] in details
    assert "profiled" in details
    assert 'id="top-nodes"' in dom
    shot_dir = pathlib.Path(os.environ.get("LOOM_TEST_ARTIFACTS", tmp_path))
    shot_dir.mkdir(parents=True, exist_ok=True)
    shot = shot_dir / "viewer.png"
    run = subprocess.run(common + ["--window-size=1400,900", "--screenshot=" + str(shot), url],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and shot.exists() and shot.stat().st_size > 10000, run.stderr[-2000:]


def layered_graph(layers=30):
    """A decoder-like stack: per layer a norm, q/k/v projections, scores, softmax, output
    projection and an MLP, over weights named blk.N.* (as GGUF names them)."""
    rng = np.random.default_rng(0)
    g = loom.Graph()
    x = g.placeholder("x", [1, 8])
    h = x
    for i in range(layers):
        w = lambda name: g.variable(f"blk.{i}.{name}", rng.standard_normal((8, 8)).astype(np.float32))
        n = loom.rms_norm(h)
        for _ in range(6):  # an activation chain, so a layer holds ~35 nodes
            n = loom.tanh(n) * n
        q, k, v = n @ w("attn_q"), n @ w("attn_k"), n @ w("attn_v")
        # A constant made mid-layer (no layer number; a distinct value, so no pass merges it
        # into layer 0's): the folded layer before it in program order takes it as an input.
        a = loom.softmax(q * k * (1.0 + i / 64)) * v
        h = h + a @ w("attn_output")
        m = loom.rms_norm(h)
        h = h + loom.silu(m @ w("ffn_gate")) * (m @ w("ffn_up")) @ w("ffn_down")
    return g, loom.rms_norm(h)


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (scripts/setup.sh)")
def test_large_graph_collapses_its_layers_in_chromium(tmp_path):
    g, y = layered_graph()
    # Unfused, so the lowered graph keeps its 1000+ nodes (fusion folds each activation chain).
    exe = loom.compile(g, outputs=[y], disabled_passes=["fuse_elementwise"])
    exe.profile({"x": np.ones((1, 8), np.float32)})
    path = tmp_path / "large.html"
    exe.view(str(path))
    nodes = page_data(path.read_text())["stages"][-1]["graph"]["nodes"]
    assert len(nodes) > 1000
    common = [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu",
              "--enable-logging=stderr", "--v=0", "--virtual-time-budget=10000",
              "--user-data-dir=" + str(tmp_path / "profile")]
    run = subprocess.run(common + ["--dump-dom", path.as_uri()], capture_output=True,
                         text=True, timeout=180)
    assert run.returncode == 0, run.stderr[-2000:]
    console = [l for l in run.stderr.splitlines() if "CONSOLE" in l or "Uncaught" in l]
    assert not [l for l in console if "rror" in l or "Uncaught" in l], console
    dom = run.stdout
    assert re.search(r'id="node-count">%d nodes<' % len(nodes), dom)
    # Collapsed by default above 300 nodes: layer 0 open, the other 29 layers one box each.
    assert len(re.findall(r'<g [^>]*class="node group', dom)) == 29
    shot_dir = pathlib.Path(os.environ.get("LOOM_TEST_ARTIFACTS", tmp_path))
    shot_dir.mkdir(parents=True, exist_ok=True)
    shot = shot_dir / "viewer_large.png"
    run = subprocess.run(common + ["--window-size=1400,900", "--screenshot=" + str(shot),
                                   path.as_uri()], capture_output=True, text=True, timeout=180)
    assert run.returncode == 0 and shot.exists(), run.stderr[-2000:]
