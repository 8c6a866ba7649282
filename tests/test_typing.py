"""tasks/ and operators/ type-check: mypy with the settings of pyproject.toml ``[tool.mypy]``.

mypy runs from the virtual environment next to the test's Python, in the repository root (so it
reads ``[tool.mypy]``: the files, ``disallow_untyped_defs`` and the rest), with its incremental
cache in ``.mypy_cache`` (git-ignored): a cold run (fresh clone, CI) takes about 50 s of CPU, a
warm one about 5 s.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _mypy() -> list[str]:
    """The venv's ``mypy`` script, else ``python -m mypy`` (both from the dev extra)."""
    beside = Path(sys.executable).with_name("mypy")
    return [str(beside)] if beside.exists() else [sys.executable, "-m", "mypy"]


@pytest.mark.timeout(300)
def test_tasks_and_operators_type_check():
    result = subprocess.run(
        [*_mypy(), "--config-file", str(REPO / "pyproject.toml"),
         "--cache-dir", str(REPO / ".mypy_cache"), "--hide-error-context"],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
    )
    assert result.returncode == 0, (
        "mypy finds type errors in tasks/ or operators/ (settings: pyproject.toml [tool.mypy]; "
        "fix the types, an ignore needs its error code and a reason):\n"
        f"{result.stdout}{result.stderr}"
    )
