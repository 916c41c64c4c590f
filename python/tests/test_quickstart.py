"""The quick start of docs/python.md (also in the README) runs as written."""

import contextlib
import io
import pathlib
import re

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[2]


def quickstart_code(path):
    text = path.read_text()
    section = text.split("## Quick start", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, f"no python block under '## Quick start' in {path}"
    return match.group(1)


def test_quickstart_runs_and_prints_what_it_says():
    code = quickstart_code(ROOT / "docs" / "python.md")
    assert 10 <= len(code.strip().splitlines()) <= 20
    printed = io.StringIO()
    scope = {}
    with contextlib.redirect_stdout(printed):
        exec(compile(code, "docs/python.md quick start", "exec"), scope)
    assert printed.getvalue().split()[:2] == ["(2,", "3)"]
    np.testing.assert_allclose(scope["out"].sum(axis=-1), [1.0, 1.0], rtol=1e-6)


def test_readme_carries_the_same_quickstart():
    readme = (ROOT / "README.md").read_text()
    code = quickstart_code(ROOT / "docs" / "python.md")
    assert code in readme, "the README's Python quick start differs from docs/python.md"
