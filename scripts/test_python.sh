#!/usr/bin/env bash
# Installs the Python package from this checkout (`pip install .`, as docs/python.md says)
# and runs its pytest suite. GPU tests (marked cuda) skip where there is no GPU.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}
cd "$root"
# Without a GPU the package is built for the CPU only (faster); LOOM_CUDA=1 or 0 decides.
if [ -z "${LOOM_CUDA:-}" ] && ! nvidia-smi -L >/dev/null 2>&1; then
  export LOOM_CUDA=0
fi
start=$(date +%s)
# --no-build-isolation: scikit-build-core and nanobind come from scripts/setup.sh.
"$python" -m pip install -q --no-build-isolation --root-user-action=ignore .
echo "test_python: pip install took $(( $(date +%s) - start )) s"
# From the repository root, so that the installed package (not python/loom) is imported.
"$python" -m pytest -q python/tests "$@"
