#!/usr/bin/env bash
# Configures and builds Loom (CUDA on when nvcc is found) into build/ or $LOOM_BUILD_DIR.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${LOOM_BUILD_DIR:-$root/build}
extra=()
if ! command -v nvcc >/dev/null 2>&1 && [ -x /usr/local/cuda/bin/nvcc ]; then
  export PATH=/usr/local/cuda/bin:$PATH
fi
[ -n "${LOOM_CUDA:-}" ] && extra+=("-DLOOM_CUDA=${LOOM_CUDA}")
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release "${extra[@]}" "$@" >/dev/null
ninja -C "$build" -j"${LOOM_JOBS:-$(nproc)}"
