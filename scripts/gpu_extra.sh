#!/usr/bin/env bash
# GPU checks beyond scripts/gpu_test.sh, run after it on the same build:
#   - compute-sanitizer memcheck over the CUDA tests, racecheck over the kernels that use
#     shared memory (reductions, norms, softmax);
#   - the Llama graph on a random-weight GGUF of SmolLM2's shape (written with the peers'
#     random_llama_gguf.py, since model files stay out of the working tree): the CPU-vs-CUDA
#     test, `loom generate` and `loom bench` on CUDA.
# LOOM_SKIP_SANITIZERS=1 leaves out the compute-sanitizer runs (a quicker pass);
# LOOM_MEMCHECK_FILTER and LOOM_RACECHECK_FILTER narrow them (gtest filters).
# Logs under $OUT when set. LOOM_PEERS: the peers folder (default .peers, then ../shared/peers).
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${LOOM_GPU_BUILD_DIR:-$root/build-gpu}
logs=${OUT:-$build/logs}
mkdir -p "$logs"
peers=${LOOM_PEERS:-$root/.peers}
[ -d "$peers" ] || peers=$root/../shared/peers
status=0
step() { echo "== $*" | tee -a "$logs/summary.txt"; }
tests="$build/tests/loom_cuda_tests"

if [ "${LOOM_SKIP_SANITIZERS:-0}" != 1 ]; then
step "compute-sanitizer memcheck"
timeout 420 compute-sanitizer --tool memcheck --report-api-errors no --error-exitcode 99 --print-limit 20 "$tests" \
  --gtest_filter="${LOOM_MEMCHECK_FILTER:--*PastTwoToThe31*:CudaLlama*:*Steady*}" >"$logs/memcheck.log" 2>&1
rc=$?; tail -4 "$logs/memcheck.log"; echo "memcheck exit $rc" | tee -a "$logs/summary.txt"
[ $rc = 0 ] || status=1
step "compute-sanitizer racecheck (shared-memory kernels)"
timeout 240 compute-sanitizer --tool racecheck --error-exitcode 99 --print-limit 20 "$tests" \
  --gtest_filter="${LOOM_RACECHECK_FILTER:-*Reduce*:*Norm*:*Softmax*}" >"$logs/racecheck.log" 2>&1
rc=$?; tail -4 "$logs/racecheck.log"; echo "racecheck exit $rc" | tee -a "$logs/summary.txt"
[ $rc = 0 ] || status=1
fi

step "random-weight SmolLM2-shaped GGUF"
mkdir -p /tmp/lc && tar xzf "$peers/llamacpp-src.tgz" -C /tmp/lc llama.cpp/gguf-py 2>/dev/null ||
  tar xzf "$peers/llamacpp-src.tgz" -C /tmp/lc
model=/tmp/smol-random.gguf
PYTHONPATH=/tmp/lc/llama.cpp/gguf-py python3 "$peers/random_llama_gguf.py" \
  "$peers/smol-template.gguf" "$model" smollm2-135m q4_1 q8_0 q8_0 >"$logs/model.log" 2>&1 ||
  { tail -5 "$logs/model.log"; status=1; }
if [ -f "$model" ]; then
  LOOM_TEST_MODEL=$model "$tests" --gtest_filter='CudaLlama*' 2>&1 | tee "$logs/cuda_llama.log" | tail -3
  [ "${PIPESTATUS[0]}" = 0 ] || status=1
  "$build/loom" generate --model "$model" --device cuda --temp 0 -n 32 -p "Hello" \
    >"$logs/generate.log" 2>&1 || status=1
  tail -2 "$logs/generate.log"
  step "loom bench (CUDA: quantized weights, then --dense f16)"
  "$build/loom" bench --model "$model" --device cuda -p 512 -n 128 -r 3 2>&1 | tee "$logs/model_bench.md"
  "$build/loom" bench --model "$model" --device cuda -p 0 -n 128 -r 3 -c 4352 --profile 2>&1 |
    tee -a "$logs/model_bench.md"
  "$build/loom" bench --model "$model" --device cuda --dense -p 512 -n 128 -r 3 2>&1 |
    tee -a "$logs/model_bench.md"
fi
step "extra status $status"
exit "$status"
