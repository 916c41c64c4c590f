#!/usr/bin/env bash
# Sets everything up, builds, and runs every test: the C++ suite through CTest (GPU tests
# skip with a message where no GPU is present) and the Python package's pytest suite.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh"
start=$(date +%s)
"$root/scripts/build.sh"
build=${LOOM_BUILD_DIR:-$root/build}
echo "test: C++ build took $(( $(date +%s) - start )) s"
ctest --test-dir "$build" --output-on-failure -j"$(nproc)" --timeout 600
if [ -f "$root/scripts/test_python.sh" ]; then
  "$root/scripts/test_python.sh"
fi
