#!/usr/bin/env bash
# Sets everything up, builds, and runs every test: the C++ suite through CTest (GPU tests
# skip with a message where no GPU is present), the Python package's pytest suite, and the
# C++ CPU tests again under AddressSanitizer and UBSan (scripts/test_sanitizers.sh;
# LOOM_SANITIZERS=0 leaves that out).
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
if [ "${LOOM_SANITIZERS:-1}" != 0 ]; then
  "$root/scripts/test_sanitizers.sh"
fi
