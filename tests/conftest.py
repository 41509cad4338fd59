"""Fixtures shared by every test folder.

Only the standard library and pytest here: each folder also runs with a single
distribution installed (``nox -s isolated``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

MypyRunner = Callable[..., "subprocess.CompletedProcess[str]"]


# The settings of the repository's [tool.mypy] without its mypy_path: sample
# programs see netaio as a user does, from the installed distributions.
MYPY_CONFIG = """\
[mypy]
strict = True
python_version = 3.10
warn_unreachable = True
"""


@pytest.fixture(scope="session")
def run_mypy(tmp_path_factory: pytest.TempPathFactory) -> MypyRunner:
    """Runs ``mypy --strict`` on sample programs (paths as given, relative to
    ``cwd``); skips where mypy is not installed, fails if mypy cannot run.

    Every run of a test session, in every xdist worker, uses the same
    configuration and one shared cache, one run at a time: checking netaio
    and the standard library anew costs ~3 s a run, with a warm cache ~0.4 s.
    mypy rechecks every file whose content changed, so a run still sees only
    its own files.
    """
    if importlib.util.find_spec("mypy") is None:
        pytest.skip("mypy is not installed in this environment")
    base = tmp_path_factory.getbasetemp()
    # Under xdist each worker's basetemp is a folder of the session's one.
    root = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "mypy-shared"
    root.mkdir(exist_ok=True)
    config = root / "mypy.ini"
    env = {k: v for k, v in os.environ.items() if k != "MYPYPATH"}

    def run(files: Sequence[Path | str], *, cwd: Path) -> subprocess.CompletedProcess[str]:
        command = [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(config),
            "--cache-dir",
            str(root / "cache"),
            "--no-error-summary",
            "--hide-error-context",
            "--no-pretty",
            "--show-error-codes",
            "--no-color-output",
            *(str(f) for f in files),
        ]
        with _exclusive(root / "lock"):
            if not config.exists():
                config.write_text(MYPY_CONFIG)
            result = subprocess.run(
                command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False
            )
        if result.returncode not in (0, 1):  # 2: mypy could not run
            pytest.fail(
                f"mypy did not run (exit {result.returncode}):\n{result.stdout}{result.stderr}"
            )
        return result

    return run


@contextlib.contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (a no-op where fcntl is missing)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
