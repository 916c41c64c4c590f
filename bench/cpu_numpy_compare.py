#!/usr/bin/env python3
"""Loom's CPU backend beside NumPy in the same process, on the shapes of issue #14's
"CPU backend's speed" section: one-op compiled executables run with NumPy feeds.

    PYTHONPATH=build/python python3 bench/cpu_numpy_compare.py [--rounds 15] [--ops add,sum]

Each round times `--number` calls of the Loom executable, then the same of the NumPy
reference (interleaved, so that load from other processes hits both alike). Prints a
Markdown table of medians (and minimums) in milliseconds per call.

Loom's outputs: the Python package keeps each output's earlier result and writes the next
run into it when the caller has dropped it, so a loop of `exe.run(feeds)` that drops its
results reuses output buffers, like NumPy's `out=`. NumPy references use `out=` wherever
NumPy has one.
"""

import argparse
import os
import platform
import statistics
import time

import ml_dtypes
import numpy as np

import loom

N = 1 << 24


def timed(fn, number):
    start = time.perf_counter_ns()
    for _ in range(number):
        fn()
    return (time.perf_counter_ns() - start) / number / 1e6


def compile_one(build, feeds):
    """build(graph) -> output tensor; feeds: name -> array. Returns the run closure."""
    g = loom.Graph()
    holders = {}
    for name, array in feeds.items():
        dtype = {
            np.dtype(np.float32): loom.float32,
            np.dtype(np.float16): loom.float16,
            np.dtype(ml_dtypes.bfloat16): loom.bfloat16,
        }[array.dtype]
        holders[name] = g.placeholder(name, list(array.shape), dtype)
    exe = loom.compile(g, outputs=[build(**holders)])
    return exe, lambda: exe.run(feeds)


def cases(rng):
    a = rng.standard_normal(N, dtype=np.float32)
    b = rng.standard_normal(N, dtype=np.float32)
    out = np.empty(N, np.float32)
    a16, b16 = a.astype(np.float16), b.astype(np.float16)
    abf, bbf = a.astype(ml_dtypes.bfloat16), b.astype(ml_dtypes.bfloat16)
    x_row = rng.standard_normal((1, 4096), dtype=np.float32)
    w = rng.standard_normal((4096, 4096), dtype=np.float32) / 64
    row_out = np.empty((1, 4096), np.float32)
    rows = rng.standard_normal((256, 4096), dtype=np.float32)
    rows_out = np.empty_like(rows)
    rows_tmp = np.empty_like(rows)
    col = np.empty((256, 1), np.float32)
    small = (a * 0.25).astype(np.float32)

    def np_softmax():
        np.max(rows, axis=1, keepdims=True, out=col)
        np.subtract(rows, col, out=rows_tmp)
        np.exp(rows_tmp, out=rows_tmp)
        np.sum(rows_tmp, axis=1, keepdims=True, out=col)
        np.divide(rows_tmp, col, out=rows_out)

    def np_rms_norm():
        np.multiply(rows, rows, out=rows_tmp)
        np.mean(rows_tmp, axis=1, keepdims=True, out=col)
        col[...] = 1.0 / np.sqrt(col + 1e-6)
        np.multiply(rows, col, out=rows_out)

    return [
        ("add f32", "2^24", lambda x, y: x + y, {"x": a, "y": b},
         lambda: np.add(a, b, out=out), lambda: a + b),
        ("mul f32", "2^24", lambda x, y: x * y, {"x": a, "y": b},
         lambda: np.multiply(a, b, out=out), lambda: a * b),
        ("sum f32", "2^24", lambda x: loom.sum(x), {"x": a},
         lambda: np.sum(a), lambda: np.sum(a, dtype=np.float64)),
        ("matmul f32 (GEMV)", "1x4096 @ 4096x4096", lambda x, w: loom.matmul(x, w),
         {"x": x_row, "w": w}, lambda: np.matmul(x_row, w, out=row_out), lambda: x_row @ w),
        ("add f16", "2^24 (NumPy: f32 add)", lambda x, y: x + y, {"x": a16, "y": b16},
         lambda: np.add(a, b, out=out), lambda: (a16 + b16)),
        ("add bf16", "2^24 (NumPy: f32 add)", lambda x, y: x + y, {"x": abf, "y": bbf},
         lambda: np.add(a, b, out=out), lambda: (abf.astype(np.float32) + bbf.astype(np.float32))),
        ("identity (pass-through)", "64 MB f32", lambda x: x, {"x": a},
         lambda: np.copyto(out, a), lambda: a),
        ("softmax f32", "256x4096, last axis", lambda x: loom.softmax(x, -1), {"x": rows},
         np_softmax, None),
        ("rms_norm f32", "256x4096", lambda x: loom.rms_norm(x, eps=1e-6), {"x": rows},
         np_rms_norm, None),
        ("exp f32", "2^24", lambda x: loom.exp(x), {"x": small},
         lambda: np.exp(small, out=out), lambda: np.exp(small)),
    ]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=11)
    p.add_argument("--number", type=int, default=5, help="calls per timing")
    p.add_argument("--ops", default="", help="comma-separated name prefixes (default: all)")
    p.add_argument("--no-check", action="store_true", help="skip the result check")
    args = p.parse_args()
    rng = np.random.default_rng(0)
    wanted = [s for s in args.ops.split(",") if s]
    rows = []
    for name, shape, build, feeds, np_fn, ref in cases(rng):
        if wanted and not any(name.startswith(w) for w in wanted):
            continue
        exe, loom_fn = compile_one(build, feeds)
        if not args.no_check and ref is not None:
            got = np.asarray(loom_fn()[0], dtype=np.float64)
            want = np.asarray(ref(), dtype=np.float64)
            err = np.max(np.abs(got - want) / (np.abs(want) + 1))
            if err > 2e-2:
                raise SystemExit(f"{name}: Loom differs from NumPy (max rel err {err})")
        loom_fn()
        np_fn()
        lt, nt = [], []
        for _ in range(args.rounds):
            lt.append(timed(loom_fn, args.number))
            nt.append(timed(np_fn, args.number))
        lm, nm = statistics.median(lt), statistics.median(nt)
        rows.append((name, shape, lm, min(lt), nm, min(nt)))
        del exe
    load = os.getloadavg()
    print(f"NumPy {np.__version__}, loom {getattr(loom, '__version__', '?')}, "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, "
          f"{args.rounds} rounds x {args.number} calls")
    print()
    print("| op | shape | Loom ms (median / min) | NumPy ms (median / min) | NumPy/Loom (medians) |")
    print("|---|---|---:|---:|---:|")
    for name, shape, lm, lmin, nm, nmin in rows:
        print(f"| {name} | {shape} | {lm:.2f} / {lmin:.2f} | {nm:.2f} / {nmin:.2f} | "
              f"{nm / lm:.2f} |")


if __name__ == "__main__":
    main()
