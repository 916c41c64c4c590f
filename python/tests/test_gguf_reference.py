"""Loom's GGUF reader against gguf-py (llama.cpp's own Python reader): every metadata key, its
type and value, and every tensor's name, type, dims, data offset and size must agree, on the
bundled SmolLM2 model (scripts/fetch_model.sh) and on the small fixture in tests/data.

Loom's side comes from `loom inspect --json` (the C++ CLI: $LOOM_CLI, else the build folder).
Skipped when gguf-py, the CLI or the model is absent."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

gguf = pytest.importorskip("gguf")

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
FIXTURE = ROOT / "tests" / "data" / "small.gguf"


def loom_cli():
    candidates = [os.environ.get("LOOM_CLI")]
    if os.environ.get("LOOM_BUILD_DIR"):
        candidates.append(str(Path(os.environ["LOOM_BUILD_DIR"]) / "loom"))
    candidates += [str(ROOT / "build" / "loom"), shutil.which("loom")]
    for c in candidates:
        if c and Path(c).is_file() and os.access(c, os.X_OK):
            return c
    return None


def loom_inspect(path):
    cli = loom_cli()
    if cli is None:
        pytest.skip("the loom CLI is not built (set LOOM_CLI or build into build/)")
    out = subprocess.run([cli, "inspect", "--json", str(path)], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)


def flatten(value):
    if isinstance(value, list):
        return [x for v in value for x in flatten(v)]
    return [value]


@pytest.mark.parametrize("path", [FIXTURE, MODEL], ids=["fixture", "smollm2"])
def test_matches_gguf_py(path):
    if not path.exists():
        pytest.skip(f"{path.name} is absent (scripts/fetch_model.sh fetches it)")
    ours = loom_inspect(path)
    reader = gguf.GGUFReader(path)

    # Metadata: gguf-py lists the header's counts as GGUF.* pseudo-keys first.
    fields = {k: f for k, f in reader.fields.items() if not k.startswith("GGUF.")}
    assert ours["version"] == reader.fields["GGUF.version"].contents()
    assert list(ours["metadata"]) == list(fields)
    for key, field in fields.items():
        mine = ours["metadata"][key]
        types = [gguf.GGUFValueType(t).name.lower() for t in field.types]
        assert mine["type"] == types[0], key
        if types[0] == "array":
            assert mine["element_type"] == types[1], key
        theirs = field.contents()
        if types[0] == "array" and types[1] == "array":
            # gguf-py flattens nested arrays.
            assert flatten(mine["value"]) == theirs, key
        else:
            assert mine["value"] == theirs, key

    # Tensors: gguf-py's shape is in GGUF order (ne[0] first), its data_offset absolute.
    assert len(ours["tensors"]) == len(reader.tensors)
    for mine, theirs in zip(ours["tensors"], reader.tensors):
        assert mine["name"] == theirs.name
        assert mine["type"] == theirs.tensor_type.name, theirs.name
        assert mine["type_id"] == int(theirs.tensor_type), theirs.name
        assert mine["ne"] == [int(d) for d in theirs.shape], theirs.name
        assert mine["shape"] == [int(d) for d in reversed(theirs.shape)], theirs.name
        assert mine["file_offset"] == int(theirs.data_offset), theirs.name
        assert mine["bytes"] == int(theirs.n_bytes), theirs.name
    assert ours["data_offset"] == reader.data_offset
