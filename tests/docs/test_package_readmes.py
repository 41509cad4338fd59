"""Snippets of the distribution READMEs that must work on their own.

tests/core/test_readme.py runs netaio-core's examples joined into one
program; a reader copies one block at a time, so each block of that README
runs alone here too. netaio-auth's usage blocks, which a reader copies in
order, run together (they only build objects: nothing listens).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "packages" / "netaio-core" / "README.md"
AUTH = ROOT / "packages" / "netaio-auth" / "README.md"


def _blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(encoding="utf-8"), re.S)


def _run(code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "snippet.py"
    script.write_text(code, encoding="utf-8")
    return subprocess.run(
        [sys.executable, "-W", "error", str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("number", range(len(_blocks(CORE))))
def test_each_core_readme_block_runs_alone(number: int, tmp_path: Path) -> None:
    done = _run(_blocks(CORE)[number], tmp_path)
    assert done.returncode == 0, done.stderr


def test_auth_readme_usage_runs_and_binds_loopback(tmp_path: Path) -> None:
    usage = _blocks(AUTH)[:2]
    assert 'host="127.0.0.1"' in usage[0]
    done = _run("\n".join(usage), tmp_path)
    assert done.returncode == 0, done.stderr
