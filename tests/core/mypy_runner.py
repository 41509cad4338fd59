"""mypy --strict error lines of sample programs (see the root conftest's ``run_mypy``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def mypy_strict_errors(run_mypy: Any, folder: Path, *files: str) -> list[str]:
    """Type-check ``files`` in ``folder``; return mypy's error lines."""
    result = run_mypy(files, cwd=folder)
    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    assert (result.returncode == 1) == bool(errors), result.stdout + result.stderr
    return errors
