"""The README's Python examples work verbatim when pasted into a plain script (issue 12, point 8). Each ```python
block runs as its own script from the repository root; the exploratory-modelling one (hundreds of paired runs)
runs only in ``make test-full``."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from conftest import FULL, ROOT

BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
LONG = ("perform_experiments",)  # examples too long for `make test`


def test_the_readme_has_python_examples():
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{k}" for k in range(len(BLOCKS))])
def test_readme_python_example_runs_as_a_script(tmp_path, code):
    if any(word in code for word in LONG) and not FULL:
        pytest.skip("long example: runs in make test-full")
    script = tmp_path / "example.py"
    script.write_text(code)
    run = subprocess.run([sys.executable, str(script)], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                         capture_output=True, text=True, timeout=1800)
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr, run.stderr
