"""The documentation site works for someone following it alone.

docs/getting-started.md marks its files (``<!-- walkthrough: NAME -->``
before a ```python block), the output each one prints
(``<!-- walkthrough-output: NAME -->`` before a ```text block) and the
pytest run of its test file (``<!-- walkthrough-command: NAME -->``). This
test saves every marked file into one empty directory, as a reader would, and
runs them there: each program must print what the page says, and the test
file must pass under pytest. The other pages mark their complete programs
with ``<!-- run: NAME -->`` / ``<!-- run-output: NAME -->`` the same way.

Everything runs in subprocesses with a timeout, on loopback, on port 0.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
GETTING_STARTED = DOCS / "getting-started.md"
TIMEOUT = 60

_BLOCK = r"<!-- {kind}: (?P<name>[\w.-]+) -->\n```(?P<lang>\w+)\n(?P<body>.*?)^```$"


def _marked(path: Path, kind: str) -> dict[str, str]:
    text = path.read_text(encoding="utf-8")
    return {
        m["name"]: m["body"]
        for m in re.finditer(_BLOCK.format(kind=re.escape(kind)), text, re.M | re.S)
    }


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


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


@pytest.fixture(scope="module")
def walkthrough_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding every file of the page, saved as a reader would."""
    folder = tmp_path_factory.mktemp("walkthrough")
    for name, code in FILES.items():
        (folder / name).write_text(code, encoding="utf-8")
    return folder


@pytest.mark.parametrize("name", sorted(OUTPUTS))
def test_program_prints_what_the_page_says(name: str, walkthrough_dir: Path) -> None:
    done = _run(["-X", "dev", "-W", "error", name], walkthrough_dir)
    assert done.returncode == 0, f"{name}:\n{done.stderr}"
    assert done.stderr == "", f"{name} wrote to stderr:\n{done.stderr}"
    assert done.stdout == OUTPUTS[name], name


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_the_test_file_passes(name: str, walkthrough_dir: Path) -> None:
    assert f"pytest -q {name}" in COMMANDS[name]
    done = _run(["-m", "pytest", "-q", "-p", "no:cacheprovider", name], walkthrough_dir)
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"\b2 passed\b", done.stdout), done.stdout


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


@pytest.mark.parametrize(("where", "code", "output"), PROGRAMS, ids=[p[0] for p in PROGRAMS])
def test_page_program_runs(where: str, code: str, output: str | None, tmp_path: Path) -> None:
    script = tmp_path / where.rsplit(":", 1)[1]
    script.write_text(code, encoding="utf-8")
    done = _run(["-X", "dev", "-W", "error", str(script)], tmp_path)
    assert done.returncode == 0, f"{where}:\n{done.stderr}"
    assert done.stderr == "", f"{where} wrote to stderr:\n{done.stderr}"
    if output is not None:
        assert done.stdout == output, where
