"""Fixtures shared by every test folder.

Only the standard library and pytest here: each folder also runs with a single
distribution installed (``nox -s isolated``).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import pytest

CONFIG_FILES = ("mypy.ini", ".mypy.ini", "pyproject.toml", "setup.cfg")
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
def run_mypy(tmp_path_factory: pytest.TempPathFactory) -> MypyRunner:
    """Runs mypy --strict on sample programs; skips where mypy is not installed.

    All runs of a test session (every xdist worker) share a cache per set of
    options and environment, one run at a time (the ``cache_dir`` a test
    names is not used): checking netaio and the standard library anew costs
    ~3 s a run, with a warm cache ~0.4 s. mypy rechecks every file whose
    content changed, so a run still sees only its own files.
    """
    if importlib.util.find_spec("mypy") is None:
        pytest.skip("mypy is not installed in this environment")
    base = tmp_path_factory.getbasetemp()
    # Under xdist each worker's basetemp is a folder of the session's one.
    root = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "mypy-caches"
    root.mkdir(exist_ok=True)

    def run(
        files: Sequence[Path | str],
        *,
        cwd: Path,
        cache_dir: Path,
        options: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        effective = sorted((os.environ if env is None else env).items())
        # mypy reads a configuration from the folder it runs in (the tests' own
        # temporary folders have none)
        config = [str(cwd / name) for name in CONFIG_FILES if (cwd / name).exists()]
        key = hashlib.sha256(repr((config, list(options), effective)).encode()).hexdigest()
        shared = root / key[:16]
        with _exclusive(root / f"{key[:16]}.lock"):
            return _run_mypy(files, cwd=cwd, cache_dir=shared, options=options, env=env)

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
