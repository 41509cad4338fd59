"""Fixtures shared by every test folder.

Only the standard library and pytest here: each folder also runs with a single
distribution installed (``nox -s isolated``).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pytest

MypyRunner = Callable[..., "subprocess.CompletedProcess[str]"]


def _run_mypy(
    files: Sequence[Path | str],
    *,
    cwd: Path,
    cache_dir: Path,
    options: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """``mypy --strict`` on ``files``; fails the test if mypy itself fails."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-error-summary",
            "--hide-error-context",
            "--no-pretty",
            "--cache-dir",
            str(cache_dir),
            *options,
            *(str(f) for f in files),
        ],
        cwd=cwd,
        env=None if env is None else dict(env),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if result.returncode not in (0, 1):  # 2: mypy could not run
        pytest.fail(f"mypy did not run (exit {result.returncode}):\n{result.stdout}{result.stderr}")
    return result


@pytest.fixture(scope="session")
def run_mypy() -> MypyRunner:
    """Runs mypy --strict on sample programs; skips where mypy is not installed."""
    if importlib.util.find_spec("mypy") is None:
        pytest.skip("mypy is not installed in this environment")
    return _run_mypy
