"""examples/demo.py runs by itself, shows the whole conversation and exits 0."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run_demo() -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-X", "dev", "-W", "error", str(ROOT / "examples" / "demo.py")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _in_order(lines: list[str], expected: list[str]) -> list[str]:
    """The expected line patterns not found in order (empty when all are)."""
    position = 0
    for index, pattern in enumerate(expected):
        while position < len(lines) and not re.fullmatch(pattern, lines[position]):
            position += 1
        if position == len(lines):
            return expected[index:]
        position += 1
    return []


def test_demo_shows_the_conversation_and_exits_cleanly() -> None:
    done = _run_demo()
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    lines = [" ".join(line.split()) for line in done.stdout.splitlines()]
    missing = _in_order(
        lines,
        [
            r"netaio \S+ demo: item service on 127\.0\.0\.1:\d+",
            r"alice -> REQUEST_URI /hello alice",
            r"alice <- RESPOND_URI /hello hello, alice",
            r"watcher <- CONFIRM_SUBSCRIBE /items",
            r'alice <- OK /items \{"id": 1, "name": "teapot"\}',
            r'watcher <- NOTIFY_URI /items \{"event": "created", "id": 1, "name": "teapot"\}',
            r'watcher <- NOTIFY_URI /items \{"event": "created", "id": 2, "name": "kettle"\}',
            r'alice <- OK /items \{"id": 1, "name": "blue teapot"\}',
            r'watcher <- NOTIFY_URI /items \{"event": "updated", "id": 1, "name": "blue teapot"\}',
            r'watcher <- NOTIFY_URI /items \{"event": "deleted", "id": 2, "name": null\}',
            r'alice <- NOT_FOUND /items \{"id": 2\}',
            r'alice <- RESPOND_URI /items \{"1": "blue teapot"\}',
            r"mallory -> REQUEST_URI /items",
            r"server !! HMAC check failed: request refused, AUTH_ERROR sent",
            r"mallory <- nothing: the reply failed mallory's own auth check",
            r"watcher <- CONFIRM_UNSUBSCRIBE /items",
            r"done: the server stopped and every connection is closed",
        ],
    )
    assert not missing, f"missing or out of order: {missing}\n\n{done.stdout}"
    # The rejected client got no reply it could use.
    assert [line for line in lines if line.startswith("mallory <- ")] == [
        "mallory <- nothing: the reply failed mallory's own auth check"
    ]
    # Each change reached the watcher exactly once.
    assert sum(line.startswith("watcher <- NOTIFY_URI") for line in lines) == 4
