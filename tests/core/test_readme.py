"""The examples in netaio-core's README run, print what they say, and pass
mypy --strict."""

from __future__ import annotations

import re
import runpy
from pathlib import Path
from typing import Any

import pytest

from .mypy_runner import mypy_strict_errors

README = Path(__file__).resolve().parents[2] / "packages" / "netaio-core" / "README.md"


def _program() -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)
    assert len(blocks) >= 3, "the README lost its examples"
    return "\n\n".join(blocks)


def test_examples_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    program = tmp_path / "readme.py"
    program.write_text(_program())
    runpy.run_path(str(program), run_name="readme")
    assert capsys.readouterr().out.splitlines() == [
        "message truncated: header announces 40 bytes, got 39",
        "MessageType.REQUEST_URI b'echo' True",
        "skipped a malformed frame: body malformed: uri_length 9 exceeds the 0 bytes after it",
        "MessageType.REQUEST_URI b'echo' True",
        "peer closed cleanly",
    ]


def test_examples_pass_mypy_strict(tmp_path: Path, run_mypy: Any) -> None:
    (tmp_path / "readme.py").write_text(_program())
    assert mypy_strict_errors(run_mypy, tmp_path, "readme.py") == []
