"""What the root README shows: its usage examples, each with its output,
and the two quick-start commands (tests/docs/test_code_blocks.py runs every
block and checks the output)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

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
