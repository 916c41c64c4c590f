"""GPU tests against PyTorch (torch.nn.functional and friends), with torch CUDA tensors in
and out through DLPack. Marked `cuda`: they skip without a GPU, a CUDA build or PyTorch."""

import numpy as np
import pytest
from conftest import accumulation_tolerance, assert_close, normalized_tolerance, torch_or_none

import loom

torch = torch_or_none()
pytestmark = pytest.mark.cuda

DTYPES = [loom.float32, loom.float16, loom.bfloat16]
DTYPE_IDS = lambda d: d.name  # noqa: E731


def cuda_randn(*shape, dtype=loom.float32, seed=None):
    generator = torch.Generator(device="cuda")
    generator.manual_seed(seed if seed is not None else int(torch.randint(0, 2**31, ()).item()))
    t = torch.randn(*shape, device="cuda", generator=generator)
    return t.to(loom.to_torch_dtype(dtype))


def assert_close_torch(got, want, dtype, what="", tolerance=None):
    """conftest.assert_close (elementwise rtol/atol) on two tensors of one device."""
    assert got.device == want.device, what
    assert_close(got.double().cpu().numpy(), want.double().cpu().numpy(), dtype, what, tolerance)


def run_cuda(g, outputs, feeds):
    exe = loom.compile(g, outputs=outputs, device="cuda")
    return exe.run(feeds, output="torch")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_elementwise_against_torch(dtype):
    a, b = cuda_randn(7, 1, 13, dtype=dtype), cuda_randn(5, 13, dtype=dtype)
    g = loom.Graph()
    x, y = g.placeholder("a", a.shape, dtype), g.placeholder("b", b.shape, dtype)
    F = torch.nn.functional
    cases = [
        (x + y, a + b), (x * y, a * b), (x - y, a - b), (loom.maximum(x, y), torch.maximum(a, b)),
        (loom.exp(x), torch.exp(a)), (loom.tanh(x), torch.tanh(a)), (loom.silu(x), F.silu(a)),
        (loom.gelu(x), F.gelu(a)), (loom.gelu(x, approximate="tanh"), F.gelu(a, approximate="tanh")),
        (loom.sigmoid(x), torch.sigmoid(a)), (loom.relu(x), F.relu(a)),
        (loom.where(loom.less(x, y), x, y), torch.where(a < b, a, b)),
    ]
    outs = run_cuda(g, [c[0] for c in cases], {"a": a, "b": b})
    for i, (got, (_, want)) in enumerate(zip(outs, cases)):
        assert isinstance(got, torch.Tensor) and got.is_cuda and got.dtype == a.dtype
        assert_close_torch(got, want, dtype, f"case {i}")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_matmul_reductions_norms_against_torch(dtype):
    a, b = cuda_randn(2, 1, 33, 64, dtype=dtype), cuda_randn(3, 64, 17, dtype=dtype)
    v = cuda_randn(4, 96, dtype=dtype)
    w, bias = cuda_randn(96, dtype=dtype), cuda_randn(96, dtype=dtype)
    g = loom.Graph()
    x, y = g.placeholder("a", a.shape, dtype), g.placeholder("b", b.shape, dtype)
    t = g.placeholder("v", v.shape, dtype)
    tw, tb = g.placeholder("w", [96], dtype), g.placeholder("bias", [96], dtype)
    F = torch.nn.functional
    # Sums in f32 in another order than torch's: over 64 products (matmul; randn products are
    # mostly below 4), 96 values (sum), 4 values of a 1/4 (mean), 96 (softmax and norms).
    mm_tol = accumulation_tolerance(dtype, 64, 4.0)
    norm_tol = normalized_tolerance(dtype, 96)
    cases = [
        (x @ y, a @ b, mm_tol),
        (loom.matmul(x, y, transpose_b=False), torch.matmul(a, b), mm_tol),
        (loom.sum(t, [1]), v.float().sum(1).to(v.dtype), accumulation_tolerance(dtype, 96, 4.0)),
        (loom.mean(t, [0], keepdims=True), v.float().mean(0, keepdim=True).to(v.dtype),
         accumulation_tolerance(dtype, 4, 1.0)),
        (loom.max(t, [1]), v.amax(1), (0.0, 0.0)),
        (loom.softmax(t, -1), F.softmax(v.float(), -1).to(v.dtype), norm_tol),
        (loom.log_softmax(t, -1), F.log_softmax(v.float(), -1).to(v.dtype), norm_tol),
        (loom.layer_norm(t, tw, tb, eps=1e-5),
         F.layer_norm(v.float(), (96,), w.float(), bias.float(), 1e-5).to(v.dtype), norm_tol),
        (loom.rms_norm(t, tw, eps=1e-6), F.rms_norm(v.float(), (96,), w.float(), 1e-6).to(v.dtype),
         norm_tol),
    ]
    outs = run_cuda(g, [c[0] for c in cases], {"a": a, "b": b, "v": v, "w": w, "bias": bias})
    for i, (got, (_, want, tol)) in enumerate(zip(outs, cases)):
        assert_close_torch(got, want, dtype, f"case {i}", tol)
    argmax = run_cuda(g, [loom.argmax(t, 1)], {"v": v})[0]
    assert torch.equal(argmax, v.float().argmax(1))


def test_cuda_tensors_in_and_out_without_copy():
    a = cuda_randn(64, 32)
    data = loom.tensor_data(a)
    assert data.device in ("cuda", "cuda:0") and data.data_ptr == a.data_ptr()
    g = loom.Graph()
    x = g.placeholder("x", [64, 32])
    exe = loom.compile(g, outputs=[x * 2.0], device="cuda")
    (as_loom,) = exe.run({"x": a}, output="loom")
    shared = torch.from_dlpack(as_loom)
    assert shared.is_cuda and shared.data_ptr() == as_loom.data_ptr
    assert torch.equal(shared, a * 2)
    (as_torch,) = exe.run({"x": a}, output="torch")
    assert as_torch.is_cuda and torch.equal(as_torch, a * 2)
    (as_numpy,) = exe.run({"x": a.cpu().numpy()})  # host feed, host result
    np.testing.assert_array_equal(as_numpy, (a * 2).cpu().numpy())


def test_torch_work_is_ordered_before_loom_reads_it():
    g = loom.Graph()
    x = g.placeholder("x", [4096, 1024])
    exe = loom.compile(g, outputs=[loom.sum(x, [1])], device="cuda")
    for _ in range(5):
        a = cuda_randn(4096, 1024)
        b = a @ a.T @ a  # long, asynchronous torch work that writes the feed...
        (got,) = exe.run({"x": b}, output="torch")  # ...which Loom must wait for
        # 1024 terms as large as the largest |b|, summed in another order than torch's.
        tol = accumulation_tolerance(loom.float32, 1024, b.abs().max().item())
        assert_close_torch(got, b.sum(1), loom.float32, "sum after matmul", tol)


def test_non_contiguous_cuda_tensor_is_made_contiguous():
    a = cuda_randn(16, 8)
    g = loom.Graph()
    x = g.placeholder("x", [8, 16])
    exe = loom.compile(g, outputs=[x + 0.0], device="cuda")
    (got,) = exe.run({"x": a.T}, output="torch")
    assert torch.equal(got, a.T.contiguous())


def test_cuda_feed_to_a_cpu_executable():
    # Executable::run takes feeds on any device and copies them to its own (copy_feeds goes
    # through the feed's backend), so a CUDA tensor fed to a CPU executable is copied to the
    # host: one IEEE multiply by 3 on each side, bit-identical.
    a = cuda_randn(3, 4)
    g = loom.Graph()
    x = g.placeholder("x", [3, 4])
    exe = loom.compile(g, outputs=[x * 3.0], device="cpu")
    (got,) = exe.run({"x": a})
    assert isinstance(got, np.ndarray)
    np.testing.assert_array_equal(got, (a * 3).cpu().numpy())


@pytest.mark.parametrize("dtype", [loom.float16, loom.bfloat16], ids=DTYPE_IDS)
def test_kv_cache_decode_loop_on_cuda(dtype):
    heads, max_seq, d = 4, 256, 64
    g = loom.Graph()
    cache = g.variable("k", torch.zeros(heads, max_seq, d, dtype=loom.to_torch_dtype(dtype)))
    k = g.placeholder("k_new", [heads, 1, d], dtype)
    q = g.placeholder("q", [heads, 1, d], dtype)
    starts = g.placeholder("starts", [3], loom.int32)
    updated = loom.slice_update(g.read(cache), k, starts)
    g.assign(cache, updated)
    scores = loom.matmul(q, updated, transpose_b=True)
    exe = loom.compile(g, outputs=[scores], device="cuda")
    want = torch.zeros(heads, max_seq, d, device="cuda", dtype=torch.float64)
    replayed = False
    for step in range(100):
        k_new, query = cuda_randn(heads, 1, d, dtype=dtype), cuda_randn(heads, 1, d, dtype=dtype)
        starts_now = torch.tensor([0, step, 0], dtype=torch.int32, device="cuda")
        (got,) = exe.run({"k_new": k_new, "q": query, "starts": starts_now}, output="torch")
        want[:, step] = k_new[:, 0].double()
        # Sums of 64 products (randn: mostly below 4) in f32; the reference in double.
        assert_close_torch(got, (query.double() @ want.transpose(-1, -2)).to(got.dtype), dtype,
                           f"step {step}", accumulation_tolerance(dtype, 64, 4.0))
        replayed |= exe.last_run_stats.replayed_graph
    cached = exe.variables.get("k", output="torch", copy=False)
    assert cached.is_cuda and torch.equal(cached.double(), want)
    assert replayed, "a steady decode step should replay a CUDA graph"
