"""Every ```python block of README.md, packages/*/README.md and docs/**/*.md
runs on its own, as a reader who copies it would run it: alone in an empty
folder, in a fresh interpreter (``-X dev -W error``), within a timeout, with
nothing on stderr (but -X dev's notes of slow callbacks). When a ```text
block follows it (directly, or after a line such as "Output:"), stdout must
be that text. All of them together
pass ``mypy --strict``.

Files a page tells the reader to save side by side (its
``<!-- walkthrough: NAME -->`` blocks) are saved together, and a block named
``test_*.py`` is run by pytest. A block that reads certificate files gets
them made for it (``ca.pem``, ``server.pem``/``server.key`` for
"localhost", ``client.pem``/``client.key``, ``clients-ca.pem``) with
trustme, as a reader would bring their own. This is the one place that
executes the documentation's code; other tests check what the pages say.
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
PAGES = [
    ROOT / "README.md",
    *sorted(ROOT.glob("packages/*/README.md")),
    *sorted((ROOT / "docs").rglob("*.md")),
]
TIMEOUT = 60
OPTIONAL = ("uvloop", "cryptography", "prometheus_client", "nats")

# -X dev reports a callback that ran over 0.1 s (a TLS handshake on a busy
# machine, say): timing, not a fault of the example.
_SLOW_CALLBACK = re.compile(r"^Executing <.*> took \d+\.\d+ seconds\n", re.M)
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```\n", re.S | re.M)
_NAME = re.compile(r"<!-- (?:walkthrough|run): ([\w.-]+) -->\s*$")
_BETWEEN_CODE_AND_OUTPUT = re.compile(r"\s*(?:\w[\w ]*:)?\s*(?:<!--[^>]*-->)?\s*")


@dataclass(frozen=True)
class Block:
    page: Path
    line: int
    code: str
    output: str | None
    name: str | None  # the file name the page gives it

    @property
    def id(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"

    @property
    def file_name(self) -> str:
        if self.name is not None:
            return self.name
        stem = re.sub(r"\W", "_", str(self.page.relative_to(ROOT)).removesuffix(".md"))
        return f"block_{stem}_{self.line}.py".lower()

    @property
    def needs(self) -> list[str]:
        return [m for m in OPTIONAL if re.search(rf"^\s*(?:import|from) {m}\b", self.code, re.M)]

    @property
    def needs_certificates(self) -> bool:
        return ".pem" in self.code


def _blocks() -> list[Block]:
    found = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        fences = list(_FENCE.finditer(text))
        for i, fence in enumerate(fences):
            if fence[1] != "python":
                continue
            output = None
            after = fences[i + 1] if i + 1 < len(fences) else None
            if after is not None and after[1] == "text":
                between = text[fence.end() : after.start()]
                if _BETWEEN_CODE_AND_OUTPUT.fullmatch(between):
                    output = after[2]
            before = text[: fence.start()].rstrip("\n").rsplit("\n", 1)[-1]
            named = _NAME.search(before)
            line = text.count("\n", 0, fence.start()) + 1
            found.append(Block(page, line, fence[2], output, named[1] if named else None))
    return found


BLOCKS = _blocks()


def _certificates(folder: Path) -> None:
    trustme: Any = pytest.importorskip("trustme", reason="the TLS examples need certificates")
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(folder / "ca.pem"))
    ca.cert_pem.write_to_path(str(folder / "clients-ca.pem"))
    for name, identity, common_name in (
        ("server", "localhost", None),
        ("client", "alice@example.org", "alice"),
    ):
        cert = ca.issue_cert(identity, common_name=common_name)
        cert.private_key_pem.write_to_path(str(folder / f"{name}.key"))
        with open(folder / f"{name}.pem", "wb") as out:
            for pem in cert.cert_chain_pems:
                out.write(pem.bytes())


def test_every_page_with_code_is_found() -> None:
    pages = {block.page for block in BLOCKS}
    assert ROOT / "README.md" in pages
    assert ROOT / "docs" / "getting-started.md" in pages
    assert len(BLOCKS) >= 30, len(BLOCKS)


@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: b.id)
def test_block_runs_on_its_own(block: Block, tmp_path: Path) -> None:
    for module in block.needs:
        pytest.importorskip(module, reason=f"{block.id} imports {module}")
    if block.needs_certificates:
        _certificates(tmp_path)
    if block.name is not None:  # the page's other named files, saved beside it
        for other in BLOCKS:
            if other.page == block.page and other.name is not None:
                (tmp_path / other.name).write_text(other.code, encoding="utf-8")
    script = tmp_path / block.file_name
    script.write_text(block.code, encoding="utf-8")
    if block.file_name.startswith("test_"):
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", script.name]
    else:
        command = [sys.executable, "-X", "dev", "-W", "error", script.name]
    done = subprocess.run(
        command, cwd=tmp_path, capture_output=True, text=True, timeout=TIMEOUT, check=False
    )
    assert done.returncode == 0, f"{block.id}:\n{done.stdout}{done.stderr}"
    if block.file_name.startswith("test_"):
        assert re.search(r"\b\d+ passed\b", done.stdout), done.stdout
        return
    stderr = _SLOW_CALLBACK.sub("", done.stderr)
    assert stderr == "", f"{block.id} wrote to stderr:\n{done.stderr}"
    if block.output is not None:
        assert done.stdout == block.output, block.id


def test_blocks_pass_mypy_strict(tmp_path: Path, run_mypy: Any) -> None:
    """The documentation shows code a typed user can copy: it type-checks."""
    checked = [b for b in BLOCKS if all(importlib.util.find_spec(m) for m in b.needs)]
    files = []
    for block in checked:
        folder = tmp_path / (block.page.stem + "_" + str(abs(hash(block.page)) % 10_000))
        folder.mkdir(exist_ok=True)
        (folder / block.file_name).write_text(block.code, encoding="utf-8")
        files.append(folder / block.file_name)
    done = run_mypy(files, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
