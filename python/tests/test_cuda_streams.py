"""CUDA streams between Loom and PyTorch: a torch thread busy on the legacy default stream
while Loom captures and replays CUDA graphs on another thread, torch work queued on a side
stream ordered before Loom reads its result (both DLPack paths), and memory handed to Loom
ordered before torch reads it back. Marked `cuda`: they skip without a GPU, a CUDA build or
PyTorch."""

import threading

import numpy as np
import pytest
from conftest import assert_close, torch_or_none

import loom

torch = torch_or_none()
pytestmark = pytest.mark.cuda

# GPU cycles of torch.cuda._sleep: tens of milliseconds, far longer than Loom takes to launch.
SLOW = 50_000_000


def layered(g, x, layers=30):
    y = x
    for _ in range(layers):
        y = loom.tanh(y) * 0.5 + loom.softmax(y, -1)
    return y


def layered_reference(x, layers=30):
    y = x.astype(np.float64)
    for _ in range(layers):
        e = np.exp(y - y.max(-1, keepdims=True))
        y = np.tanh(y) * 0.5 + e / e.sum(-1, keepdims=True)
    return y


def test_torch_default_stream_thread_while_loom_captures(rng):
    stop = threading.Event()
    errors = []
    done = [0]

    def torch_on_the_default_stream():
        try:
            with torch.cuda.stream(torch.cuda.default_stream()):
                a = torch.randn(512, 512, device="cuda")
                while not stop.is_set():
                    b = a @ a
                    a = b / b.norm()
                    done[0] += 1
                    if done[0] % 64 == 0:
                        torch.cuda.default_stream().synchronize()
        except Exception as e:  # noqa: BLE001 - reported by the main thread
            errors.append(e)

    worker = threading.Thread(target=torch_on_the_default_stream)
    worker.start()
    try:
        while done[0] < 16 and worker.is_alive():
            threading.Event().wait(0.001)
        g = loom.Graph()
        x = g.placeholder("x", [64, 256])
        y = layered(g, x)
        host = rng.uniform(-2, 2, size=(64, 256)).astype(np.float32)
        want = layered_reference(host)
        feed = torch.from_numpy(host).cuda()
        for round_ in range(12):
            exe = loom.compile(g, outputs=[y], device="cuda")  # a fresh plan: run 2 captures
            for run in range(3):
                (got,) = exe.run({"x": feed}, output="torch")
                assert_close(got.cpu().numpy(), want, loom.float32, f"round {round_} run {run}")
                if run > 0:
                    assert exe.last_run_stats.replayed_graph, f"round {round_} run {run}"
    finally:
        stop.set()
        worker.join()
    assert not errors, f"torch failed while Loom captured: {errors[0]!r}"
    assert done[0] > 16
    torch.cuda.synchronize()


class DLPackOnly:
    """A producer that speaks only the DLPack protocol (no torch fast path)."""

    def __init__(self, tensor):
        self.tensor = tensor

    def __dlpack__(self, stream=None, **kwargs):
        return self.tensor.__dlpack__(stream=stream)

    def __dlpack_device__(self):
        return self.tensor.__dlpack_device__()


@pytest.mark.parametrize("wrap", [lambda t: t, DLPackOnly], ids=["torch", "protocol"])
def test_side_stream_work_is_ordered_before_loom_reads_it(wrap):
    g = loom.Graph()
    x = g.placeholder("x", [1024, 256])
    exe = loom.compile(g, outputs=[x * 2.0], device="cuda")
    side = torch.cuda.Stream()
    feed = torch.zeros(1024, 256, device="cuda")
    for value in [1.0, -3.0, 7.5, 0.25]:
        with torch.cuda.stream(side):
            torch.cuda._sleep(SLOW)  # the write below lands long after run() launches
            feed.fill_(value)
            (got,) = exe.run({"x": wrap(feed)}, output="torch")
        assert torch.equal(got, torch.full_like(got, 2 * value)), f"value {value}"
    torch.cuda.synchronize()


def test_handed_over_memory_is_ordered_before_torch_reads_it_back():
    side = torch.cuda.Stream()
    source = torch.zeros(4096, device="cuda")
    for value in [2.0, -5.0, 9.0]:
        with torch.cuda.stream(side):
            torch.cuda._sleep(SLOW)
            source.fill_(value)
            data = loom.tensor_data(source)  # ordered on side's work, not waited for
        # Read back on the default stream, which never waited for `side` itself.
        for back in (torch.from_dlpack(data), data.torch()):
            assert back.data_ptr() == source.data_ptr()
            assert back.sum().item() == value * 4096, f"value {value}"
        assert data.numpy().sum() == value * 4096  # a copy on Loom's stream
    torch.cuda.synchronize()
