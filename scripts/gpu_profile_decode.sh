#!/usr/bin/env bash
# On the GPU machine: builds the CLI and the CUDA tests (build-gpu), runs the decode-path
# tests (quantized GEMV, attention, norms, argmax; racecheck over the decode attention and
# the fused GEMV), scripts/gpu_extra.sh without sanitizers (random-weight SmolLM2: CudaLlama,
# generate, bench), and Nsight Compute over one decode step: each kernel's time with the
# caches and clocks as they run (--cache-control none --clock-control none), summed by kernel.
# Logs under $OUT (default build-gpu/logs).
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
B=${LOOM_GPU_BUILD_DIR:-build-gpu}
logs=${OUT:-$B/logs}
mkdir -p "$logs"
ncu=${NCU:-$(ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | tail -1)}
cmake -S . -B "$B" -G Ninja -DCMAKE_BUILD_TYPE=Release -DLOOM_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90a \
  -DLOOM_BUILD_TOOLS=ON -DLOOM_PYTHON=OFF -DLOOM_WERROR=OFF >"$logs/cfg.log" 2>&1
ninja -C "$B" loom loom_cuda_tests >"$logs/build.log" 2>&1 ||
  { grep -E 'error|FAILED' "$logs/build.log" | head -30; exit 1; }
"$B/tests/loom_cuda_tests" --gtest_filter="${LOOM_TEST_FILTER:-*Quantized*:*Attention*:*Argmax*:*Norm*}" \
  >"$logs/tests.log" 2>&1
status=$?
tail -3 "$logs/tests.log"; grep -E 'FAILED|Failure' -A3 "$logs/tests.log" | head -20
timeout 300 compute-sanitizer --tool racecheck --error-exitcode 99 "$B/tests/loom_cuda_tests" \
  --gtest_filter='CudaAttention.Decode*:CudaAttention.KvCache*:*FoldedNorm*' >"$logs/race.log" 2>&1
rc=$?; echo "racecheck exit $rc"; tail -2 "$logs/race.log"; [ $rc = 0 ] || status=1
LOOM_SKIP_SANITIZERS=1 OUT="$logs/extra" LOOM_GPU_BUILD_DIR="$B" bash scripts/gpu_extra.sh >"$logs/extra.out" 2>&1 || status=1
grep -E 'tg128|pp512|PASSED|FAILED|kernel calls|tok/s' "$logs/extra.out"
model=/tmp/smol-random.gguf
if [ -x "$ncu" ] && [ -f "$model" ]; then
  timeout 240 "$ncu" --cache-control none --clock-control none --metrics gpu__time_duration.sum --csv \
    --launch-count 2000 "$B/loom" bench --model "$model" --device cuda -p 0 -n 3 -r 1 \
    >"$logs/ncu.csv" 2>"$logs/ncu.err"
  # The last decode step: as many kernels as `loom bench --profile` counted.
  steps=$(grep -o 'decode step: [0-9]*' "$logs/extra.out" | head -1 | grep -o '[0-9]*$')
  python3 - "$logs/ncu.csv" "${steps:-400}" <<'PY'
import collections, csv, sys
rows = [r for r in csv.reader(open(sys.argv[1])) if len(r) > 10]
head, rows = rows[0], rows[1:]
name, value, grid = head.index("Kernel Name"), head.index("Metric Value"), head.index("Grid Size")
by_kernel = collections.defaultdict(list)
for r in rows[-int(sys.argv[2]):]:
    by_kernel[r[name][:60] + " " + r[grid]].append(float(r[value].replace(",", "")) / 1000)
total = 0
for k, v in sorted(by_kernel.items(), key=lambda kv: -sum(kv[1])):
    total += sum(v)
    print(f"{sum(v):8.1f} us {len(v):4d} x {sum(v) / len(v):6.2f} us  {k}")
print(f"kernel time of one decode step: {total:.1f} us")
PY
fi
exit $status
