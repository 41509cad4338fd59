"""The root README's examples: each ```python block runs, prints what the
```text block after it shows, and passes mypy --strict.

Each block is a complete program that starts its own server on port 0, so
it runs in a subprocess of its own with a bounded timeout.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"

_FENCE = re.compile(r"^```(\w*)\n(.*?)^```\n", re.S | re.M)


@dataclass
class Example:
    line: int  # where the block starts in README.md
    code: str
    output: str | None  # the ```text block right after it, if any

    @property
    def name(self) -> str:
        return f"readme_line_{self.line}"

    @property
    def needs(self) -> list[str]:
        """Optional third-party modules the example imports (skipped without them)."""
        return [m for m in ("uvloop",) if re.search(rf"^import {m}$", self.code, re.M)]


def _examples() -> list[Example]:
    text = README.read_text()
    fences = list(_FENCE.finditer(text))
    examples = []
    for i, fence in enumerate(fences):
        if fence[1] != "python":
            continue
        output = None
        following = fences[i + 1] if i + 1 < len(fences) else None
        if (
            following is not None
            and following[1] == "text"
            and not text[fence.end() : following.start()].strip()
        ):
            output = following[2]
        line = text.count("\n", 0, fence.start()) + 1
        examples.append(Example(line, fence[2], output))
    return examples


EXAMPLES = _examples()


def test_readme_has_the_usage_examples() -> None:
    code = "\n".join(e.code for e in EXAMPLES)
    for needle in ("@server.on(", "receive_loop", ".notify(", "HMACAuthPlugin", "message_class="):
        assert needle in code, f"no README example uses {needle}"
    assert all(e.output is not None for e in EXAMPLES), "every example shows its output"


def test_quick_start_commands_are_intact() -> None:
    """.ci/run reads the line after the test-command marker's fence."""
    text = README.read_text()
    for marker, command in (
        ("<!-- demo-command -->", "python3 -m pip install nox uv && python3 -m nox -s demo"),
        ("<!-- test-command -->", "python3 -m pip install nox uv && python3 -m nox"),
    ):
        assert f"{marker}\n```sh\n{command}\n```\n" in text


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e.name)
def test_example_runs(example: Example, tmp_path: Path) -> None:
    for module in example.needs:
        pytest.importorskip(module)
    script = tmp_path / f"{example.name}.py"
    script.write_text(example.code)
    done = subprocess.run(
        [sys.executable, "-X", "dev", "-W", "error", str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, f"README.md line {example.line}:\n{done.stderr}"
    assert not done.stderr, f"README.md line {example.line} wrote to stderr:\n{done.stderr}"
    if example.output is not None:
        assert done.stdout == example.output, f"README.md line {example.line}"


def test_examples_pass_mypy_strict(tmp_path: Path, run_mypy: Any) -> None:
    """The README shows code a typed user can copy: it type-checks."""
    checked = [e for e in EXAMPLES if all(importlib.util.find_spec(m) for m in e.needs)]
    for example in checked:
        (tmp_path / f"{example.name}.py").write_text(example.code)
    done = run_mypy(
        [tmp_path / f"{e.name}.py" for e in checked],
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
