"""Typed downstream integration: sample programs under ``cases/`` checked by mypy --strict.

``good_*.py`` programs must pass with no error (and run). ``bad_*.py``
programs mark each line mypy must reject with a trailing comment::

    await client.send(b"hello")  # E[arg-type]: "bytes"; expected "MessageProtocol"
    TCPServer(auth_plugin=P())  # E[arg-type]: "P"  # N: error

``E[code]: text`` expects an error with that code whose message contains
``text``; ``N: text`` expects a note on that line that reads ``text``. Any
error that is not marked fails the test, so each mistake is rejected for the
expected reason and nothing else.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CASES = Path(__file__).resolve().parent / "cases"
GOOD = sorted(CASES.glob("good_*.py"))
BAD = sorted(CASES.glob("bad_*.py"))

_OUTPUT = re.compile(r"^(?P<path>[^:]+):(?P<line>\d+): (?P<kind>error|note): (?P<text>.*)$")
_CODE = re.compile(r"\s+\[(?P<code>[a-z-]+)\]$")
_MARKER = re.compile(r"^(?:E\[(?P<code>[a-z-]+)\]|N): (?P<text>.+)$")

# (line, "error", code, text) or (line, "note", "", text)
Diagnostic = tuple[int, str, str, str]


@pytest.fixture(scope="module")
def mypy_output(
    tmp_path_factory: pytest.TempPathFactory, run_mypy: Any
) -> dict[str, list[Diagnostic]]:
    """Run mypy --strict once over every case; diagnostics by file name."""
    done = run_mypy(
        [path.relative_to(ROOT) for path in GOOD + BAD],
        cwd=ROOT,
    )
    if done.stderr.strip():
        pytest.fail(f"mypy wrote to stderr (exit {done.returncode}):\n{done.stderr}{done.stdout}")
    found: dict[str, list[Diagnostic]] = {}
    for line in done.stdout.splitlines():
        match = _OUTPUT.match(line)
        if match is None:
            pytest.fail(f"unexpected mypy output line: {line!r}")
        text, code = match["text"], ""
        if match["kind"] == "error":
            code_match = _CODE.search(text)
            assert code_match is not None, f"error without a code: {line!r}"
            code, text = code_match["code"], text[: code_match.start()]
        diagnostic = (int(match["line"]), match["kind"], code, text.strip())
        found.setdefault(Path(match["path"]).name, []).append(diagnostic)
    return found


def _markers(path: Path) -> Iterator[tuple[int, str, str, str]]:
    """The expected diagnostics written in ``path``'s trailing comments."""
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        start = line.find("  # E[")
        if start < 0:
            continue
        for part in line[start + 4 :].split("  # "):
            match = _MARKER.match(part.strip())
            assert match is not None, f"{path.name}:{number}: malformed marker {part!r}"
            kind = "error" if match["code"] else "note"
            yield number, kind, match["code"] or "", match["text"]


def test_cases_exist() -> None:
    assert GOOD, "no good_*.py case"
    assert len(BAD) >= 3, "the mistaken programs are missing"


@pytest.mark.parametrize("path", GOOD, ids=lambda p: p.name)
def test_good_program_passes_mypy_strict(
    path: Path, mypy_output: dict[str, list[Diagnostic]]
) -> None:
    errors = [d for d in mypy_output.get(path.name, []) if d[1] == "error"]
    assert not errors, "\n".join(f"{path.name}:{n}: {text} [{code}]" for n, _, code, text in errors)


@pytest.mark.parametrize("path", BAD, ids=lambda p: p.name)
def test_mistaken_program_is_rejected(path: Path, mypy_output: dict[str, list[Diagnostic]]) -> None:
    expected = list(_markers(path))
    assert expected, f"{path.name} marks no expected error"
    actual = mypy_output.get(path.name, [])
    problems: list[str] = []
    for number, kind, code, text in expected:
        if not any(
            a[0] == number
            and a[1] == kind
            and a[2] == code
            and (text in a[3] if kind == "error" else text == a[3])
            for a in actual
        ):
            got = [f"{a[1]}: {a[3]} [{a[2]}]" for a in actual if a[0] == number]
            problems.append(f"line {number}: expected {kind} [{code}] {text!r}; got {got}")
    marked_errors = {(n, code) for n, kind, code, _ in expected if kind == "error"}
    for number, kind, code, text in actual:
        if kind == "error" and (number, code) not in marked_errors:
            problems.append(f"line {number}: unexpected error {text} [{code}]")
    assert not problems, f"{path.name}:\n" + "\n".join(problems)


def test_good_program_runs() -> None:
    """The typed application is not only well-typed: it works end to end
    with its own header, body, message and auth classes."""
    done = subprocess.run(
        [sys.executable, "-X", "dev", "-W", "error", str(CASES / "good_app.py")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert done.stdout.splitlines() == [
        "upper: HI version 2",
        "missing: NOT_FOUND no such route",
        "pushed: NOTIFY_URI n1",
        "pushed: PUBLISH_URI b1",
        "echo: OK ping",
        "notified: apple",
        "keys: 2",
        f"version {_umbrella_version()}",
    ]


def _umbrella_version() -> str:
    import netaio

    return netaio.version()
