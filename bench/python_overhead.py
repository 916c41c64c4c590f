#!/usr/bin/env python3
"""What Python adds to a run: exe.run from Python against Executable::run from C++ on a
one-op and a 200-op graph of 16 floats (bench/run_overhead_bench.cpp builds the same graphs).

    python bench/python_overhead.py --cxx build/bench/loom_bench

Prints a Markdown table (medians of repeated timings, microseconds per run) for
docs/performance.md. Without --cxx only the Python side is timed.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

# One OpenMP thread for both sides (set before Loom loads OpenMP): the tiny kernels gain
# nothing from threads, and thread wake-ups on a busy machine would swamp the overhead.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

import loom  # noqa: E402

ELEMENTS = 16


def overhead_graph(ops, device="cpu"):
    g = loom.Graph()
    x = g.placeholder("x", [ELEMENTS])
    y = x
    for i in range(ops):
        y = y + 1.0 if i % 2 == 0 else y * 0.5
    return loom.compile(g, outputs=[y], device=device)


def median_us(fn, repeats, number):
    """Median over `repeats` timings of `number` calls each, in microseconds per call."""
    fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter_ns()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter_ns() - start) / number / 1e3)
    return statistics.median(samples)


def cuda_timings(ops, repeats, number):
    """The GPU executable with torch CUDA tensors in and out (no host copies)."""
    try:
        import torch
    except ImportError:
        return {}
    if not (loom.cuda_available() and torch.cuda.is_available()):
        return {}
    exe = overhead_graph(ops, "cuda")
    feeds = {"x": torch.zeros(ELEMENTS, device="cuda")}
    data = {"x": loom.tensor_data(feeds["x"])}
    return {
        "CUDA: torch in, output='torch'": lambda: exe.run(feeds, output="torch"),
        "CUDA: TensorData in, output='loom'": lambda: exe.run(data, output="loom"),
    }


def python_timings(ops, repeats, number):
    exe = overhead_graph(ops)
    array = np.zeros(ELEMENTS, np.float32)
    data = loom.tensor_data(array)
    feeds_numpy = {"x": array}
    feeds_loom = {"x": data}
    rows = {
        "numpy in, numpy out": lambda: exe.run(feeds_numpy),
        "TensorData in, output='loom'": lambda: exe.run(feeds_loom, output="loom"),
    }
    try:
        import torch

        tensor = torch.zeros(ELEMENTS)
        feeds_torch = {"x": tensor}
        rows["torch in, output='torch'"] = lambda: exe.run(feeds_torch, output="torch")
    except ImportError:
        pass
    rows = {name: ("cpu", fn) for name, fn in rows.items()}
    rows.update({name: ("cuda", fn) for name, fn in cuda_timings(ops, repeats, number).items()})
    return {name: (device, median_us(fn, repeats, number)) for name, (device, fn) in rows.items()}


def cxx_timings(binary):
    out = subprocess.run(
        [binary, "--benchmark_filter=RunOverhead", "--benchmark_format=json",
         "--benchmark_repetitions=5", "--benchmark_report_aggregates_only=true"],
        check=True, capture_output=True, text=True).stdout
    result = {}
    for bench in json.loads(out)["benchmarks"]:
        if bench.get("aggregate_name") == "median":
            _, device, ops = bench["run_name"].split("/")
            scale = {"us": 1.0, "ns": 1e-3, "ms": 1e3}[bench["time_unit"]]
            result[(device, int(ops))] = bench["real_time"] * scale
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cxx", help="path to loom_bench (bench/run_overhead_bench.cpp)")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--number", type=int, default=2000)
    args = parser.parse_args()

    cxx = cxx_timings(args.cxx) if args.cxx else {}
    print(f"Python {platform.python_version()}, NumPy {np.__version__}, "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}, {time.strftime('%Y-%m-%d')}")
    print()
    print("| graph | feeds and outputs | C++ run (µs) | Python run (µs) | added by Python (µs) |")
    print("| --- | --- | ---: | ---: | ---: |")
    for ops in (1, 200):
        number = args.number if ops == 1 else max(args.number // 10, 50)
        for name, (device, us) in python_timings(ops, args.repeats, number).items():
            base = cxx.get((device, ops))
            base_text = f"{base:.2f}" if base is not None else "-"
            added = f"{us - base:.2f}" if base is not None else "-"
            print(f"| {ops} op{'s' if ops > 1 else ''} | {name} | {base_text} | {us:.2f} | {added} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
