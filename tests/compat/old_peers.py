"""Running a released netaio (0.0.2, 0.0.9) as a peer process, for the
compat tests: its interpreter is named by an environment variable that
`nox -s compat` sets, and the peer scripts beside this file speak JSON lines."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
TIMEOUT = 20.0  # a fresh interpreter importing an old netaio can be slow on a busy machine


@contextlib.asynccontextmanager
async def old_peer(
    python: str, script: str, *args: str
) -> AsyncIterator[asyncio.subprocess.Process]:
    """Run ``script`` (beside this file) with ``python``; end it (closing
    stdin, then killing) on exit."""
    proc = await asyncio.create_subprocess_exec(
        python,
        str(HERE / script),
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        yield proc
    finally:
        assert proc.stdin is not None
        if not proc.stdin.is_closing():
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), TIMEOUT)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
        # Drain what is left so that the pipes' transports are closed.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(proc.communicate(), TIMEOUT)


async def read_json_line(proc: asyncio.subprocess.Process) -> Any:
    """The peer's next JSON line; fails the test with its stderr if it ended."""
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), TIMEOUT)
    if not line:
        assert proc.stderr is not None
        err = await asyncio.wait_for(proc.stderr.read(), TIMEOUT)
        pytest.fail(f"the old netaio peer ended early:\n{err.decode(errors='replace')}")
    return json.loads(line)
