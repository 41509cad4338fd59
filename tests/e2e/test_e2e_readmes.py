"""The netaio-client and netaio-server READMEs keep their examples, each
followed by its output (tests/docs/test_code_blocks.py runs them)."""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path

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
