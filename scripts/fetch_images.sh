#!/usr/bin/env bash
# Fetches real photographs for the fft-filter example and its test into the git-ignored
# images/ folder: scikit-image's sample images camera.png (512x512 grey) and astronaut.png
# (512x512 RGB), taken from the PyPI wheel of scikit-image (no install: pip downloads the
# wheel, Python unzips the two files). Idempotent; when PyPI cannot be reached it says so and
# exits 0, so that setup goes on and the tests that need the images skip.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
images=${LOOM_IMAGES_DIR:-$root/images}
# Pinned, so that the test's figures stay true.
package=scikit-image==0.26.0
declare -A sha256=(
  [camera.png]=b0793d2adda0fa6ae899c03989482bff9a42d3d5690fc7e3648f2795d730c23a
  [astronaut.png]=88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5
)
missing=0
for name in "${!sha256[@]}"; do [ -s "$images/$name" ] || missing=1; done
[ "$missing" = 0 ] && exit 0

python=${PYTHON:-python3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "fetch_images: downloading the scikit-image wheel (about 14 MB) for its sample photographs"
if ! "$python" -m pip download --no-deps --quiet --disable-pip-version-check --only-binary=:all: \
    --dest "$tmp" "$package" >"$tmp/pip.log" 2>&1; then
  echo "fetch_images: could not download $package (offline?); the fft-filter photo tests will skip." >&2
  tail -n 3 "$tmp/pip.log" >&2
  exit 0
fi
wheel=$(ls "$tmp"/scikit_image-*.whl 2>/dev/null | head -n 1)
if [ -z "$wheel" ]; then
  echo "fetch_images: pip gave no scikit-image wheel; the fft-filter photo tests will skip." >&2
  exit 0
fi
mkdir -p "$images"
for name in "${!sha256[@]}"; do
  "$python" - "$wheel" "$images" "$name" "${sha256[$name]}" <<'PY'
import hashlib, os, sys, tempfile, zipfile
wheel, folder, name, want = sys.argv[1:]
data = zipfile.ZipFile(wheel).read("skimage/data/" + name)
got = hashlib.sha256(data).hexdigest()
if got != want:
    sys.exit(f"fetch_images: {name} has SHA-256 {got}, expected {want}")
fd, part = tempfile.mkstemp(dir=folder, prefix="." + name)
with os.fdopen(fd, "wb") as f:
    f.write(data)
os.chmod(part, 0o644)
os.replace(part, os.path.join(folder, name))
PY
  echo "fetch_images: $images/$name"
done
