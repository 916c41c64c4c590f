#!/usr/bin/env bash
# Builds Loom with CUDA for Hopper (sm_90a, Release), runs the GPU tests (CTest label
# "cuda") and the device benchmarks beside PyTorch, on a machine with an NVIDIA GPU:
#
#   scripts/gpu_test.sh                 # configure, build, test, benchmark
#   scripts/gpu_test.sh --no-bench      # tests only
#   scripts/gpu_test.sh --prebuilt DIR  # no build: run the binaries of an existing build
#
# Logs go under $OUT when it is set, else under the build directory's logs/.
# LOOM_GPU_BUILD_DIR picks the build directory (default build-gpu), JOBS the build jobs.
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=${LOOM_GPU_BUILD_DIR:-$root/build-gpu}
bench=1
prebuilt=""
while [ $# -gt 0 ]; do
  case "$1" in
    --no-bench) bench=0 ;;
    --prebuilt) prebuilt=$2; shift ;;
    *) echo "usage: $0 [--no-bench] [--prebuilt BUILD_DIR]" >&2; exit 2 ;;
  esac
  shift
done
logs=${OUT:-${prebuilt:-$build}/logs}
mkdir -p "$logs"
status=0

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 | tee "$logs/device.txt"

if [ -z "$prebuilt" ]; then
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DLOOM_CUDA=ON \
    -DCMAKE_CUDA_ARCHITECTURES=90a -DLOOM_BUILD_BENCHMARKS=ON -DLOOM_BUILD_TOOLS=ON \
    >"$logs/configure.log" 2>&1 || { tail -30 "$logs/configure.log"; exit 1; }
  targets="loom_cuda_tests"
  if ninja -C "$build" -t targets all | grep -q '^loom_cuda_bench:'; then
    targets="$targets loom_cuda_bench"
  fi
  ninja -C "$build" -j "${JOBS:-$(nproc)}" $targets >"$logs/build.log" 2>&1 ||
    { tail -40 "$logs/build.log"; exit 1; }
  # One test at a time: they share the GPU.
  (cd "$build" && ctest -L cuda --output-on-failure -j1) 2>&1 | tee "$logs/ctest.log"
  status=${PIPESTATUS[0]}
  bench_bin="$build/bench/cuda/loom_cuda_bench"
else
  "$prebuilt/tests/loom_cuda_tests" 2>&1 | tee "$logs/gtest.log"
  status=${PIPESTATUS[0]}
  bench_bin="$prebuilt/bench/cuda/loom_cuda_bench"
fi

if [ "$bench" = 1 ]; then
  if [ -x "$bench_bin" ]; then
    PYTHONUNBUFFERED=1 python3 "$root/bench/cuda/compare_torch.py" --bench "$bench_bin" \
      --json "$logs/bench.json" 2>&1 | tee "$logs/bench.md"
  else
    echo "no $bench_bin: benchmarks skipped" | tee "$logs/bench.md"
  fi
fi
exit "$status"
