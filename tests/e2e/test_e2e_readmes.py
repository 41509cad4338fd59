"""The Python examples of the netaio-client and netaio-server READMEs run,
print what the README says they print, and pass mypy --strict.

Each ```python block is a whole program, run in a fresh interpreter. When the
block is followed by "Output:" and a ```text block, stdout must equal it.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
READMES = {
    "client": ROOT / "packages" / "netaio-client" / "README.md",
    "server": ROOT / "packages" / "netaio-server" / "README.md",
}
_BLOCK = re.compile(
    r"```python\n(?P<code>.*?)```(?:\s*Output:\s*```text\n(?P<output>.*?)```)?", re.S
)


@dataclass(frozen=True)
class Example:
    name: str
    code: str
    output: str | None

    @property
    def needs_uvloop(self) -> bool:
        return re.search(r"^import uvloop$", self.code, re.M) is not None


def examples() -> list[Example]:
    found = []
    for dist, path in READMES.items():
        for number, match in enumerate(_BLOCK.finditer(path.read_text()), start=1):
            found.append(Example(f"{dist}_readme_{number}", match["code"], match["output"]))
    return found


EXAMPLES = examples()
HAS_UVLOOP = importlib.util.find_spec("uvloop") is not None


def test_each_readme_has_examples_with_output():
    for dist in READMES:
        mine = [e for e in EXAMPLES if e.name.startswith(dist)]
        assert len(mine) >= 3, f"{dist} README lost its examples"
        assert all(e.output is not None for e in mine if not e.needs_uvloop)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e.name)
def test_readme_example_runs_and_prints_what_it_says(example, tmp_path):
    if example.needs_uvloop and not HAS_UVLOOP:
        pytest.skip('uvloop is not installed (pip install "netaio-server[uvloop]")')
    script = tmp_path / f"{example.name}.py"
    script.write_text(example.code)
    done = subprocess.run(
        [sys.executable, "-W", "error", str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    if example.output is not None:
        assert done.stdout == example.output


def test_readme_examples_pass_mypy_strict(tmp_path, run_mypy):
    files = []
    for example in EXAMPLES:
        if example.needs_uvloop and not HAS_UVLOOP:
            continue
        path = tmp_path / f"{example.name}.py"
        path.write_text(example.code)
        files.append(path)
    done = run_mypy(
        files,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
