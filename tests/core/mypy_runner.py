"""Runs mypy --strict on sample programs (skips where mypy is not installed)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest


def mypy_strict_errors(folder: Path, *files: str) -> list[str]:
    """Type-check ``files`` in ``folder``; return mypy's error lines."""
    if importlib.util.find_spec("mypy") is None:
        pytest.skip("mypy is not installed in this environment")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-error-summary",
            "--hide-error-context",
            "--cache-dir",
            str(folder / ".mypy_cache"),
            *files,
        ],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert result.returncode in (0, 1), result.stdout + result.stderr  # 2: mypy itself failed
    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    assert (result.returncode == 1) == bool(errors), result.stdout + result.stderr
    return errors
