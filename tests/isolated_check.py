"""Run by ``nox -s isolated`` with the interpreter of an environment that
holds one distribution (and perhaps some of its extras):

    python tests/isolated_check.py IMPORT_NAME DIST [EXTRA ...]

Imports every module of the package. A module that cannot be imported must
say which extra it needs (``pip install "DIST[EXTRA]"``), and must import
when that extra is installed (named on the command line). For netaio-server
it also runs the command-line entry point, ``python -m netaio_server.cli``.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
import subprocess
import sys


def main(package: str, dist: str, extras: list[str]) -> int:
    root = importlib.import_module(package)
    names = [package] + [m.name for m in pkgutil.walk_packages(root.__path__, package + ".")]
    failures = []
    for name in names:
        if name.endswith("__main__"):
            continue
        try:
            importlib.import_module(name)
        except ImportError as exc:
            wanted = re.search(rf"{re.escape(dist)}\[(\w+)\]", str(exc))
            if wanted is None or wanted[1] in extras:
                failures.append(f"{name}: {exc}")
    if package == "netaio_server":
        failures += _cli_checks(dist, "client" in extras)
    for failure in failures:
        print(f"{dist}{extras or ''}: {failure}", file=sys.stderr)
    print(f"{dist}{extras or ''}: {len(names)} modules checked, {len(failures)} failures")
    return 1 if failures else 0


def _cli_checks(dist: str, with_client: bool) -> list[str]:
    """``netaio_server.cli``: serve's help, and request with or without the
    client extra (exit 2 naming the extra, or 3: nothing listens there)."""
    failures = []

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "netaio_server.cli", *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)

    served = run("serve", "--help")
    if served.returncode != 0 or "--workers" not in served.stdout:
        failures.append(f"serve --help: {served.returncode} {served.stderr}")
    asked = run("request", "127.0.0.1:9", "x", "--timeout", "2")
    expected = 3 if with_client else 2
    if asked.returncode != expected or (not with_client and f"{dist}[client]" not in asked.stderr):
        failures.append(f"request: exit {asked.returncode} (not {expected}): {asked.stderr}")
    return failures


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], sys.argv[3:]))
