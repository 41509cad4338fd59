"""The documentation site's walkthrough has what a newcomer needs.

docs/getting-started.md marks its files (``<!-- walkthrough: NAME -->``
before a ```python block), the output each one prints
(``<!-- walkthrough-output: NAME -->`` before a ```text block) and the
pytest run of its test file (``<!-- walkthrough-command: NAME -->``); the
other pages mark complete programs with ``<!-- run: NAME -->``.
tests/docs/test_code_blocks.py saves the marked files side by side and runs
them (the test file under pytest), checking each output.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
GETTING_STARTED = DOCS / "getting-started.md"

_BLOCK = r"<!-- {kind}: (?P<name>[\w.-]+) -->\n```(?P<lang>\w+)\n(?P<body>.*?)^```$"


def _marked(path: Path, kind: str) -> dict[str, str]:
    text = path.read_text(encoding="utf-8")
    return {
        m["name"]: m["body"]
        for m in re.finditer(_BLOCK.format(kind=re.escape(kind)), text, re.M | re.S)
    }


FILES = _marked(GETTING_STARTED, "walkthrough")
OUTPUTS = _marked(GETTING_STARTED, "walkthrough-output")
COMMANDS = _marked(GETTING_STARTED, "walkthrough-command")


def test_the_walkthrough_has_its_three_steps() -> None:
    assert {"service.py", "pubsub.py", "test_service.py"} <= set(FILES)
    code = "\n".join(FILES.values())
    for needle in (
        "client.request(",
        ".reply(",
        "enable_subscriptions()",
        ".subscribe(",
        "TestClient",
    ):
        assert needle in code, f"the walkthrough does not show {needle}"
    assert 'host="127.0.0.1"' in FILES["service.py"]
    assert set(OUTPUTS) <= set(FILES)
    assert set(COMMANDS) <= set(FILES)


def test_the_test_file_is_run_with_pytest() -> None:
    for name, command in COMMANDS.items():
        assert f"pytest -q {name}" in command
        assert name.startswith("test_")


def _programs() -> list[tuple[str, str, str | None]]:
    found = []
    for page in sorted(DOCS.rglob("*.md")):
        outputs = _marked(page, "run-output")
        for name, code in _marked(page, "run").items():
            found.append((f"{page.relative_to(DOCS)}:{name}", code, outputs.get(name)))
    return found


PROGRAMS = _programs()


def test_pages_mark_their_programs() -> None:
    assert PROGRAMS, "no page marks a program with <!-- run: NAME -->"
