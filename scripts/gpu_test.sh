#!/usr/bin/env bash
# Builds Loom with CUDA for Hopper (sm_90a, Release) and, on a machine with an NVIDIA GPU,
# runs every test that needs it and the device benchmarks beside PyTorch:
#   - the C++ suites (CTest labels cuda and cpu),
#   - the Python package's pytest suite, GPU tests included (when nanobind is importable),
#   - bench/cuda/compare_torch.py (Loom vs torch) and bench/python_overhead.py.
#
#   scripts/gpu_test.sh                 # configure, build, test, benchmark
#   scripts/gpu_test.sh --no-bench      # tests only
#   scripts/gpu_test.sh --prebuilt DIR  # no build: run the C++ GPU tests of an existing build
#
# On a machine with a GPU no GPU test may skip: LOOM_REQUIRE_GPU=1 turns a missing GPU into a
# failure (tests/cuda/cuda_test_util.h, python/tests/conftest.py), LOOM_CUDA_TESTS_ON_CPU is
# cleared, and any test CTest reports as skipped or not run fails the script.
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
step() { echo "== $*" | tee -a "$logs/summary.txt"; }

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 | tee "$logs/device.txt"
unset LOOM_CUDA_TESTS_ON_CPU
if nvidia-smi -L >/dev/null 2>&1; then
  export LOOM_REQUIRE_GPU=1
else
  step "no GPU: GPU tests will skip"
fi
# Fails (status 1) when the CTest log in $1 shows a skipped or not-run test on a GPU machine.
# Skips for what a GPU does not bring are allowed (LOOM_ALLOWED_SKIPS, a regex of test names):
# tests of a second GPU on a one-GPU machine, and the Llama test without a model file, which
# scripts/gpu_extra.sh runs with one.
allowed_skips=${LOOM_ALLOWED_SKIPS:-SecondGpu|CudaLlama}
no_skips() {
  [ "${LOOM_REQUIRE_GPU:-0}" = 1 ] || return 0
  if grep -E "\*\*\*Skipped|Not Run|\[  SKIPPED \]" "$1" | grep -Ev "$allowed_skips" >"$logs/skipped.txt"; then
    step "FAILED: tests skipped on a machine with a GPU:"
    tee -a "$logs/summary.txt" <"$logs/skipped.txt"
    return 1
  fi
}
python=${PYTHON:-python3}
with_python=OFF
"$python" -c "import nanobind, numpy" 2>/dev/null && with_python=ON

if [ -z "$prebuilt" ]; then
  step "configure (python package: $with_python)"
  # LOOM_WERROR=OFF: a newer host compiler may add warnings; they are logged, not fatal, here.
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DLOOM_CUDA=ON \
    -DCMAKE_CUDA_ARCHITECTURES=90a -DLOOM_BUILD_BENCHMARKS=ON -DLOOM_BUILD_TOOLS=ON \
    -DLOOM_PYTHON=$with_python -DLOOM_WERROR=OFF -DPython_EXECUTABLE="$(command -v "$python")" \
    >"$logs/configure.log" 2>&1 || { tail -30 "$logs/configure.log"; exit 1; }
  step "build"
  start=$(date +%s)
  ninja -C "$build" -k 0 -j "${JOBS:-$(nproc)}" >"$logs/build.log" 2>&1 ||
    { grep -E "error|FAILED" "$logs/build.log" | head -40; exit 1; }
  step "built in $(( $(date +%s) - start )) s"
  # One test at a time: they share the GPU.
  (cd "$build" && ctest -L cuda --output-on-failure -j1) 2>&1 | tee "$logs/ctest_cuda.log" | tail -5
  [ "${PIPESTATUS[0]}" = 0 ] || status=1
  no_skips "$logs/ctest_cuda.log" || status=1
  if ! grep -qE "tests? passed" "$logs/ctest_cuda.log" || grep -q "No tests were found" "$logs/ctest_cuda.log"; then
    step "FAILED: no cuda-labelled tests ran"
    status=1
  fi
  (cd "$build" && ctest -L cpu --output-on-failure -j8) 2>&1 | tee "$logs/ctest_cpu.log" | tail -3
  [ "${PIPESTATUS[0]}" = 0 ] || status=1
  bench_bin="$build/bench/cuda/loom_cuda_bench"
  if [ "$with_python" = ON ]; then
    step "pytest (GPU tests included)"
    (cd "$root" && PYTHONPATH="$build/python${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 \
      "$python" -m pytest -q -rs python/tests) 2>&1 | tee "$logs/pytest.log" | tail -8
    [ "${PIPESTATUS[0]}" = 0 ] || status=1
  fi
else
  "$prebuilt/tests/loom_cuda_tests" 2>&1 | tee "$logs/gtest.log"
  status=${PIPESTATUS[0]}
  no_skips "$logs/gtest.log" || status=1
  bench_bin="$prebuilt/bench/cuda/loom_cuda_bench"
fi

if [ "$bench" = 1 ]; then
  step "benchmarks"
  if [ -x "$bench_bin" ]; then
    PYTHONUNBUFFERED=1 "$python" "$root/bench/cuda/compare_torch.py" --bench "$bench_bin" \
      --json "$logs/bench.json" 2>&1 | tee "$logs/bench.md"
  else
    echo "no $bench_bin: benchmarks skipped" | tee "$logs/bench.md"
  fi
  if [ "$with_python" = ON ] && [ -z "$prebuilt" ]; then
    (cd "$root" && PYTHONPATH="$build/python${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 \
      "$python" bench/python_overhead.py --cxx "$build/bench/loom_bench") 2>&1 |
      tee "$logs/overhead.md"
  fi
fi
step "status $status"
exit "$status"
