"""The code is checked by tools, configured in pyproject.toml: ruff (ragbook/ and tests/) and mypy (ragbook/)."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *command], cwd=REPO, capture_output=True, text=True, timeout=900)


def test_ruff_finds_nothing():
    result = _run("ruff", "check", "--no-cache", "--output-format", "concise")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_finds_nothing():
    # the cache lives in the system's temporary folder, not in the checkout
    import tempfile
    from pathlib import Path

    cache = Path(tempfile.gettempdir()) / "ragbook-mypy-cache"
    result = _run("mypy", "--cache-dir", str(cache))
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr
