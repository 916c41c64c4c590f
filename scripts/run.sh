#!/usr/bin/env bash
# Sets everything up, builds, and runs `loom` with the given arguments (default: demo).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh" >&2
"$root/scripts/build.sh" >&2
build=${LOOM_BUILD_DIR:-$root/build}
if [ $# -eq 0 ]; then set -- demo; fi
exec "$build/loom" "$@"
