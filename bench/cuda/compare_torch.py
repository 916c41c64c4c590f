#!/usr/bin/env python3
"""Runs Loom's device benchmark (loom_cuda_bench) and the same operations in PyTorch on the
same GPU in one run, and prints a markdown table with the date, the device and the commit.

    python3 bench/cuda/compare_torch.py --bench build/bench/cuda/loom_cuda_bench [--json out.json]
        [--only bandwidth|matmul|chain|reduce_chain|mlp|nvrtc|fft|attention]

Both sides time with CUDA events around many launches (median of several repeats) and
rotate input sets that would otherwise sit in L2.
"""
import argparse
import datetime
import json
import os
import subprocess
import sys


def torch_time_ms(fn, iters, repeats=7):
    import torch
    for i in range(3):
        fn(i)
    torch.cuda.synchronize()
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(repeats):
        start.record()
        for i in range(iters):
            fn(i)
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop) / iters)
    times.sort()
    return times[len(times) // 2]


def fill(shape, dtype, seed):
    import torch
    g = torch.Generator(device="cuda")
    g.manual_seed(seed)
    return (torch.rand(shape, generator=g, device="cuda", dtype=torch.float32) * 2 - 1).to(dtype)


def parse_shape(text):
    return [int(v) for v in text.strip("[]").split(",") if v.strip()]


def torch_fft_ms(name):
    """torch.fft and torch.stft on the shapes of loom_cuda_bench's fft rows."""
    import torch
    if name == "rfft2":
        x = fill((8, 4096, 4096), torch.float32, 5)
        return torch_time_ms(lambda i: torch.fft.rfft2(x), 10)
    if name == "fft":
        x = torch.complex(fill((4096, 16384), torch.float32, 6), fill((4096, 16384), torch.float32, 7))
        return torch_time_ms(lambda i: torch.fft.fft(x), 10)
    audio = fill((16, 30 * 16000), torch.float32, 8)
    window = torch.hann_window(400, device="cuda")
    stft = lambda: torch.stft(audio, 400, 160, window=window, center=True, pad_mode="reflect",  # noqa: E731
                              return_complex=True)
    if name.startswith("stft"):
        return torch_time_ms(lambda i: stft(), 20)
    # Whisper's log-mel front end before its clamp and rescale: |stft|^2, mel filters, log10.
    try:
        import loom  # the same filter bank (the Python package, when installed)
    except ImportError:
        return None
    filters = torch.from_numpy(loom.mel_filter_bank(16000, 400, 80).numpy().copy()).cuda()
    return torch_time_ms(lambda i: torch.log10(torch.clamp(filters @ stft().abs() ** 2, min=1e-10)), 20)


def torch_attention_ms(name):
    """torch's SDPA on a loom_cuda_bench attention row's shape, bf16: (cuDNN, flash) ms."""
    import torch
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel
    words = name.split()
    if words[1] == "decode":
        # "attention decode B1 Hq32 Hkv8 L4096 D128": one query row over L keys, GQA; not
        # causal in torch (its causal mask is aligned to the start: row 0 would see key 0).
        b, hq, hkv, length, d = (int(w.lstrip("BHqkvLD")) for w in words[2:7])
        q = fill((b, hq, 1, d), torch.bfloat16, 40)
        k, v = (fill((b, hkv, length, d), torch.bfloat16, 41 + i) for i in range(2))
        causal, gqa, iters = False, True, 20
    else:
        b, h, s, d = (int(w[1:]) for w in words[1:5])
        causal, gqa, iters = words[5] == "causal", False, 10
        q, k, v = (fill((b, h, s, d), torch.bfloat16, 40 + i) for i in range(3))
    times = []
    for backend in (SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION):
        try:
            with sdpa_kernel(backend):
                times.append(torch_time_ms(
                    lambda i: F.scaled_dot_product_attention(q, k, v, is_causal=causal,
                                                             enable_gqa=gqa), iters))
        except RuntimeError:
            times.append(None)
    return times


def graph_replay_ms(fn, iters=50):
    """Device time of one replay of `fn` captured in a CUDA graph (after a warm-up on a side
    stream, as torch.cuda.graph asks)."""
    import torch
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    return torch_time_ms(lambda i: graph.replay(), iters)


# Torch ops (kernels launched) per step of the reduction chain: sum, mul, mul, add.
REDUCE_CHAIN_TORCH_OPS = 4


def torch_reduce_chain_ms(steps):
    import torch
    x = torch.full((64, 4096), 0.5, dtype=torch.float32, device="cuda")
    c = torch.full((4096,), 0.99, dtype=torch.float32, device="cuda")

    def chain():
        y = x
        for _ in range(steps):
            s = torch.sum(y, -1, keepdim=True)
            y = y * c + s * 2.5e-6
        return y

    return graph_replay_ms(chain)


def torch_mlp_ms():
    """The four-layer bf16 MLP decode step of loom_cuda_bench's mlp row with F.linear."""
    import torch
    import torch.nn.functional as F
    d, f, layers = 2048, 5632, 4
    weights = [tuple(fill(shape, torch.bfloat16, 100 + 3 * layer + j) * 0.02
                     for j, shape in enumerate([(f, d), (f, d), (d, f)]))
               for layer in range(layers)]
    x = fill((1, d), torch.bfloat16, 7)

    def step():
        y = x
        for gate, up, down in weights:
            y = y + F.linear(F.silu(F.linear(y, gate)) * F.linear(y, up), down)
        return y

    return graph_replay_ms(step)


def torch_equivalent(row):
    """Milliseconds of PyTorch doing what the Loom row did, or None."""
    import torch
    import torch.nn.functional as F
    dtypes = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}
    name, kind = row["name"], row["kind"]
    if name == "copy":
        a = torch.ones(1 << 30, dtype=torch.uint8, device="cuda")
        b = torch.empty_like(a)
        return torch_time_ms(lambda i: b.copy_(a), 20)
    if kind == "fft":
        return torch_fft_ms(name)
    if kind == "attention":
        cudnn, flash = torch_attention_ms(name)
        row["torch_flash_ms"] = flash
        return cudnn
    dt = dtypes.get(row["dtype"])
    if name in ("add", "mul"):
        n = parse_shape(row["shape"])[0]
        a, b = fill(n, dt, 1), fill(n, dt, 2)
        y = torch.empty_like(a)
        op = torch.add if name == "add" else torch.mul
        return torch_time_ms(lambda i: op(a, b, out=y), 20)
    if name in ("softmax", "rms_norm"):
        rows, d = parse_shape(row["shape"])
        x, w = fill((rows, d), dt, 3), fill(d, dt, 4)
        if name == "softmax":
            return torch_time_ms(lambda i: torch.softmax(x, -1), 20)
        return torch_time_ms(lambda i: F.rms_norm(x, (d,), w, 1e-6), 20)
    if kind == "matmul":
        dims = name.split()[1].split("x")
        m, n, k = (int(v) for v in dims)
        transpose_b = name.endswith("b^T")
        weight_bytes = n * k * 2
        copies = int(min(max(200e6 / weight_bytes, 1), 8))
        sets = [(fill((m, k), dt, 10 + c), fill((n, k) if transpose_b else (k, n), dt, 20 + c))
                for c in range(copies)]
        flops = 2.0 * m * n * k
        iters = 10 if flops > 1e11 else 50
        if transpose_b:
            return torch_time_ms(lambda i: F.linear(*sets[i % copies]), iters)
        return torch_time_ms(lambda i: torch.matmul(*sets[i % copies]), iters)
    if kind == "reduce_chain":
        return torch_reduce_chain_ms(row["steps"])
    if kind == "mlp":
        return torch_mlp_ms()
    if kind == "chain":
        x = torch.full((1, 4096), 0.5, dtype=torch.float16, device="cuda")
        c = torch.ones(4096, dtype=torch.float16, device="cuda")

        def chain():
            y = x
            for j in range(200):
                y = y * c if j % 2 else y + c
            return y

        if "eager" in name:
            return torch_time_ms(lambda i: chain(), 20)
        graph = torch.cuda.CUDAGraph()
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            chain()
        torch.cuda.current_stream().wait_stream(stream)
        with torch.cuda.graph(graph):
            chain()
        return torch_time_ms(lambda i: graph.replay(), 50)
    return None


def commit():
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], capture_output=True,
                               text=True).stdout.strip()
        return out + (" (with local changes)" if dirty else "")
    except Exception:
        return "unknown"


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bench", required=True, help="path of the loom_cuda_bench binary")
    parser.add_argument("--only", default="",
                        help="bandwidth, matmul, chain, reduce_chain, mlp, nvrtc, fft or attention")
    parser.add_argument("--json", help="also write every row as JSON to this file")
    parser.add_argument("--commit", default=os.environ.get("LOOM_COMMIT"),
                        help="commit to print (default: $LOOM_COMMIT, else git rev-parse)")
    args = parser.parse_args()

    import torch
    if not torch.cuda.is_available():
        print("no CUDA GPU: nothing to compare")
        return 0
    cmd = [args.bench] + ([args.only] if args.only else [])
    proc = subprocess.run(cmd, capture_output=True, text=True)
    sys.stderr.write(proc.stderr)
    if proc.returncode != 0:
        print(proc.stdout)
        print(f"loom_cuda_bench failed with exit code {proc.returncode}")
        return proc.returncode
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    # Free the benchmark's memory before torch allocates its own.
    copy_gbps = None
    for row in rows:
        row["torch_ms"] = torch_equivalent(row)
        torch.cuda.empty_cache()
        if row["name"] == "copy":
            copy_gbps = row["gbps"]
            row["torch_gbps"] = row["bytes"] / (row["torch_ms"] * 1e-3) / 1e9

    props = torch.cuda.get_device_properties(0)
    print(f"Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC  ")
    print(f"Device: {props.name} ({props.multi_processor_count} SMs), "
          f"torch {torch.__version__}, CUDA {torch.version.cuda}  ")
    print(f"Commit: {args.commit or commit()}  ")
    if copy_gbps:
        print(f"Measured device copy bandwidth (read + write): Loom {copy_gbps:.0f} GB/s, "
              f"torch {rows[0].get('torch_gbps', 0):.0f} GB/s")
    print()
    print("| op | dtype | shape | Loom ms | torch ms | torch / Loom | Loom rate | of copy BW |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for row in rows:
        t = row.get("torch_ms")
        speed = f"{t / row['ms']:.2f}" if t else "-"
        if row["kind"] == "matmul" and row["name"].startswith("gemv"):
            # The dense GEMV kernel alone: memory-bound, so bandwidth against the copy's.
            rate = f"{row['gbps']:.0f} GB/s"
            frac = f"{100 * row['gbps'] / copy_gbps:.0f}%" if copy_gbps else "-"
        elif row["kind"] == "matmul":
            rate = f"{row['tflops']:.0f} TFLOP/s"
            frac = "-"
        elif row["kind"] == "reduce_chain":
            # Loom: (whole replayed run - one-node run) / the kernels the chain adds; torch:
            # device time of the graph replay per op launched.
            ops = REDUCE_CHAIN_TORCH_OPS * row["steps"]
            torch_op = f", torch {t * 1e3 / ops:.2f} us/op" if t else ""
            rate = f"{row['us_per_kernel']:.2f} us/kernel ({row['kernels']} kernels){torch_op}"
            frac = "-"
        elif row["kind"] == "mlp":
            # Loom: whole replayed runs less a one-node run; torch: graph replay device time.
            # Weight bytes over the time; the target is Loom <= 0.85x torch's time.
            torch_rate = f", torch {row['bytes'] / (t * 1e-3) / 1e9:.0f} GB/s" if t else ""
            rate = f"{row['gbps']:.0f} GB/s weights{torch_rate}"
            frac = f"{100 * row['gbps'] / copy_gbps:.0f}%" if copy_gbps else "-"
        elif row["kind"] == "attention":
            # torch ms is its cuDNN backend (the target: Loom >= 0.9x of it); flash
            # beside it.
            flash = row.get("torch_flash_ms")
            rate = f"{row['tflops']:.0f} TFLOP/s"
            if " decode " in row["name"]:  # bound by the K/V bytes, not the FLOPs
                rate = f"{row['gbps']:.0f} GB/s of K/V"
            frac = f"flash {flash:.4f} ms" if flash else "-"
        elif row["kind"] == "nvrtc":
            rate = "-"
            frac = "-"
        elif row["kind"] == "chain":
            # Loom: whole runs (feeds in, outputs out, synchronised), the cost of a one-node
            # run taken off; torch: device time of the 200 ops (graph replay or eager).
            torch_node = f", torch {t * 1e3 / 200:.2f}" if t else ""
            rate = f"{row['us_per_node']:.2f} us/node{torch_node}"
            frac = "-"
        else:
            rate = f"{row['gbps']:.0f} GB/s"
            frac = f"{100 * row['gbps'] / copy_gbps:.0f}%" if copy_gbps else "-"
        tms = f"{t:.4f}" if t else "-"
        print(f"| {row['name']} | {row['dtype']} | {row['shape']} | {row['ms']:.4f} | {tms} | "
              f"{speed} | {rate} | {frac} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
