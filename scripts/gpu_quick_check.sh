#!/usr/bin/env bash
# A short GPU check for one device call, quicker than scripts/gpu_test.sh: builds only the CLI,
# the CUDA tests and the CUDA benchmark (build-gpu), writes the random-weight SmolLM2-shaped
# GGUF (as scripts/gpu_extra.sh), runs the CUDA tests that FILTER names (a gtest filter), then
# `loom bench --profile` on that model (quantized and --dense) and, when COMPARE names one,
# `compare_torch.py --only COMPARE`. Optional: DEPTH=4096 adds the decode test at that depth
# (`loom bench -d`); BIG="llama2-7b:q4_0 llama3-8b:q8_0" writes random-weight files of those
# shapes (every tensor of that type) and benchmarks them too. Logs under $OUT (default
# build-gpu/logs).
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
logs=${OUT:-build-gpu/logs}
mkdir -p "$logs"
peers=${LOOM_PEERS:-.peers}
[ -d "$peers" ] || peers=../shared/peers
bash scripts/gpu_deps.sh >/dev/null 2>&1
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DLOOM_CUDA=ON \
  -DCMAKE_CUDA_ARCHITECTURES=90a -DLOOM_BUILD_BENCHMARKS=ON -DLOOM_BUILD_TOOLS=ON \
  -DLOOM_PYTHON=OFF -DLOOM_WERROR=OFF >"$logs/cfg.log" 2>&1
start=$(date +%s)
ninja -C build-gpu loom loom_cuda_tests loom_cuda_bench >"$logs/build.log" 2>&1 ||
  { grep -E 'error|FAILED' "$logs/build.log" | head -30; exit 1; }
echo "built in $(( $(date +%s) - start )) s"
mkdir -p /tmp/lc && tar xzf "$peers/llamacpp-src.tgz" -C /tmp/lc llama.cpp/gguf-py 2>/dev/null
model=/tmp/smol-random.gguf
PYTHONPATH=/tmp/lc/llama.cpp/gguf-py python3 "$peers/random_llama_gguf.py" \
  "$peers/smol-template.gguf" "$model" smollm2-135m q4_1 q8_0 q8_0 >"$logs/model.log" 2>&1 ||
  tail -3 "$logs/model.log"
status=0
LOOM_REQUIRE_GPU=1 LOOM_TEST_MODEL=$model build-gpu/tests/loom_cuda_tests \
  --gtest_filter="${FILTER:-CudaQuantized*:CudaFft*:CudaLlama*:CudaDenseGemv*}" >"$logs/tests.log" 2>&1 ||
  status=1
echo "tests status $status"
grep -E '^\[  (PASSED|FAILED) |FAILED  \]' "$logs/tests.log" | head -20
build-gpu/loom bench --model "$model" --device cuda -p 512 -n 128 -r 5 --profile \
  >"$logs/bench.md" 2>"$logs/bench.err"
cat "$logs/bench.md"
grep -A12 'profiled' "$logs/bench.err"
build-gpu/loom bench --model "$model" --device cuda --dense -p 512 -n 128 -r 5 2>&1 | tail -2
if [ -n "${DEPTH:-}" ]; then
  build-gpu/loom bench --model "$model" --device cuda -p 0 -n 128 -r 3 -d "$DEPTH" 2>&1 | tail -1
fi
for big in ${BIG:-}; do
  shape=${big%%:*} type=${big##*:}
  file=/tmp/$shape-$type.gguf
  PYTHONPATH=/tmp/lc/llama.cpp/gguf-py python3 "$peers/random_llama_gguf.py" \
    "$peers/smol-template.gguf" "$file" "$shape" "$type" "$type" "$type" >"$logs/model-$shape.log" 2>&1 ||
    { tail -3 "$logs/model-$shape.log"; continue; }
  echo "$shape $type: $(du -h "$file" | cut -f1)"
  build-gpu/loom bench --model "$file" --device cuda -p 512 -n 128 -r 3 2>&1 | tail -2
  rm -f "$file"
done
if [ -n "${COMPARE:-}" ]; then
  python3 bench/cuda/compare_torch.py --bench build-gpu/bench/cuda/loom_cuda_bench \
    --only "$COMPARE" 2>&1 | tail -14
fi
exit $status
