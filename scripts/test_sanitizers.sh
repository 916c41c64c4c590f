#!/usr/bin/env bash
# Builds the library, the CLI and the C++ tests (the op fuzz test included) with
# AddressSanitizer and UndefinedBehaviorSanitizer in build-asan/ (CPU only, no benchmarks)
# and runs the CPU tests. Any report aborts the test that made it (-fno-sanitize-recover).
#
#   scripts/test_sanitizers.sh            # configure, build, run
#   LOOM_ASAN_BUILD_DIR=DIR               # another build directory
#   LOOM_JOBS=N                           # build jobs (default: all cores)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${LOOM_ASAN_BUILD_DIR:-$root/build-asan}
sanitize="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
# GCC 12 at -O1 with the sanitizers reports uninitialised reads inside libstdc++'s std::regex
# (std::function moves in regex_automaton.h) that do not happen; the normal build has none.
quiet="-Wno-maybe-uninitialized"
start=$(date +%s)
# -O1 (the library's too, LOOM_OPT_FLAGS) keeps the build and the runs short on CI's two
# cores; without -g, the reports still name the functions.
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Sanitize -DLOOM_CUDA=OFF \
  -DLOOM_OPT_FLAGS="-O1" -DLOOM_BUILD_BENCHMARKS=OFF -DLOOM_BUILD_TOOLS=ON -DLOOM_BUILD_TESTS=ON -DLOOM_PYTHON=OFF \
  -DCMAKE_CXX_FLAGS_SANITIZE="-O1 $sanitize $quiet" -DCMAKE_C_FLAGS_SANITIZE="-O1 $sanitize" \
  -DCMAKE_EXE_LINKER_FLAGS_SANITIZE="$sanitize" >/dev/null
ninja -C "$build" -j"${LOOM_JOBS:-$(nproc)}"
echo "test_sanitizers: build took $(( $(date +%s) - start )) s"
# OpenMP and BLAS keep thread pools alive until exit: not leaks of ours.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
start=$(date +%s)
ctest --test-dir "$build" -L cpu --output-on-failure -j"$(nproc)" --timeout 900
echo "test_sanitizers: tests took $(( $(date +%s) - start )) s"
