"""Threads: compile(), run(), dump() and the stats of executables that share one
VariableStore, hammered from several threads, give the same results as the same work done
serially (and as NumPy).

Where the races were: compile() adds the graph's variables to the shared store's map while
another thread's run looks variables up in it (when it makes a plan), and dump(),
arena_bytes and last_run_stats read what a run writes. So the runs here cycle through more
symbol bindings than an executable caches plans for (nearly every run makes a plan), while
a compiling thread keeps declaring new variables and a reading thread keeps dumping."""

import threading

import numpy as np
from conftest import assert_close

import loom

WORKERS = 3
STEPS = 90
RECOMPILE_EVERY = 30
WEIGHTS = 12  # variables every plan looks up
BINDINGS = 24  # batch sizes per worker: more than the 16 cached plans
WIDTH = 8
COMPILES = 40  # graphs the compiling thread builds, each declaring DECLARED new variables
DECLARED = 48


def make_inputs(seed):
    rng = np.random.default_rng(seed)
    weights = [rng.uniform(-1, 1, size=[WIDTH, WIDTH]).astype(np.float32) for _ in range(WEIGHTS)]
    feeds = [
        [
            rng.uniform(-1, 1, size=[1 + (step * 5 + t) % BINDINGS, WIDTH]).astype(np.float32)
            for step in range(STEPS)
        ]
        for t in range(WORKERS)
    ]
    return weights, feeds


def reference(t, x, weights):
    x = x.astype(np.float64)
    return sum(np.maximum(x @ w, 0) for w in weights) * (t + 1)


def compile_worker(t, step, weights, store):
    """Worker t's executable: y = (t + 1) * sum_i relu(x @ w_i), and acc_t += column sums of
    y. A recompile also declares fresh variables, inserting into the shared store."""
    g = loom.Graph()
    x = g.placeholder("x", ["n", WIDTH])
    y = None
    for i, w in enumerate(weights):
        term = loom.relu(x @ g.variable(f"w{i}", w))
        y = term if y is None else y + term
    y = y * float(t + 1)
    acc = g.variable(f"acc{t}", np.zeros([1, WIDTH], np.float32))
    g.assign(acc, g.read(acc) + loom.sum(y, axes=[0], keepdims=True))
    if step:
        for k in range(DECLARED // 4):
            g.variable(f"tag{t}_{step}_{k}", np.full([2], k, np.float32))
    return loom.compile(g, outputs=[y], variables=store)


def work(t, weights, feeds, store, results, executables):
    exe = None
    for step in range(STEPS):
        if step % RECOMPILE_EVERY == 0:
            exe = compile_worker(t, step, weights, store)
            executables.append(exe)
        (y,) = exe.run({"x": feeds[t][step]})
        results.append(y)
        # Readers of state that runs write, interleaved with other threads' runs.
        assert "matmul" in exe.dump()
        assert exe.arena_bytes > 0
        assert exe.last_run_stats.kernels > 0
        assert f"acc{t}" in store and "w0" in list(store)


def compile_more(store, results):
    """Graphs that each declare many new variables in the shared store, run once."""
    for c in range(COMPILES):
        g = loom.Graph()
        declared = [
            g.variable(f"c{c}_{k}", np.full([2], c * 1000 + k, np.float32)) for k in range(DECLARED)
        ]
        (out,) = loom.compile(g, outputs=[declared[-1] * 2.0], variables=store).run()
        results.append(out)


def test_threads_sharing_a_store_match_serial_runs():
    weights, feeds = make_inputs(seed=20261201)

    serial_store = loom.VariableStore()
    serial = [[] for _ in range(WORKERS)]
    serial_compiled = []
    for t in range(WORKERS):
        work(t, weights, feeds, serial_store, serial[t], [])
    compile_more(serial_store, serial_compiled)

    store = loom.VariableStore()
    threaded = [[] for _ in range(WORKERS)]
    threaded_compiled = []
    executables = []
    errors = []
    start = threading.Barrier(WORKERS + 2)
    done = threading.Event()

    def guarded(fn, *args):
        try:
            start.wait()
            fn(*args)
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            errors.append(e)

    def read_state():
        # dump() and the stats of every executable, as fast as possible, while they run.
        while not done.is_set():
            for exe in list(executables):
                exe.dump()
                _ = exe.arena_bytes, exe.unshared_intermediate_bytes, exe.last_run_stats
            _ = len(store), list(store)

    threads = [
        threading.Thread(
            target=guarded, args=(work, t, weights, feeds, store, threaded[t], executables)
        )
        for t in range(WORKERS)
    ]
    threads.append(threading.Thread(target=guarded, args=(compile_more, store, threaded_compiled)))
    reader = threading.Thread(target=guarded, args=(read_state,))
    for thread in threads + [reader]:
        thread.start()
    for thread in threads:
        thread.join()
    done.set()
    reader.join()
    if errors:
        raise errors[0]

    assert sorted(store) == sorted(serial_store)
    assert len(store) == WEIGHTS + WORKERS + WORKERS * (STEPS // RECOMPILE_EVERY - 1) * (
        DECLARED // 4
    ) + COMPILES * DECLARED
    for t in range(WORKERS):
        assert len(threaded[t]) == STEPS
        for step in range(STEPS):
            np.testing.assert_array_equal(threaded[t][step], serial[t][step])
            assert_close(threaded[t][step], reference(t, feeds[t][step], weights),
                         what=f"worker {t} step {step}")
        np.testing.assert_array_equal(store[f"acc{t}"], serial_store[f"acc{t}"])
        acc_want = sum(r.astype(np.float64).sum(axis=0, keepdims=True) for r in serial[t])
        assert_close(store[f"acc{t}"], acc_want, what=f"acc{t}")
    for c in range(COMPILES):
        np.testing.assert_array_equal(threaded_compiled[c], serial_compiled[c])
        np.testing.assert_array_equal(threaded_compiled[c], [2 * (c * 1000 + DECLARED - 1)] * 2)
    for name in serial_store:
        np.testing.assert_array_equal(store[name], serial_store[name], err_msg=name)
