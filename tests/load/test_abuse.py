"""Abuse at full scale, the server in its own process and the abusive peers
in another (``nox -s load``): while 20 peers pipeline requests without
reading, 3,000 stop partway through a maximum-size frame, or 500
subscribers stop reading a notify fan-out, a well-behaved client on a fresh
and on a persistent connection is answered in well under a second, and the
server's memory stays bounded by ``Limits.max_partial_bytes`` /
``max_unsent_bytes``. Peak RSS, drops and latencies are printed."""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time
from pathlib import Path

import pytest

from netaio_client import TCPClient
from netaio_core import Message

HERE = Path(__file__).resolve().parent
TIMEOUT = 10.0

pytestmark = [pytest.mark.load, pytest.mark.timeout(300)]


async def _answered(port: int, tries: int = 11) -> list[float]:
    persistent: TCPClient[Message] = TCPClient("127.0.0.1", port)
    await asyncio.wait_for(persistent.connect(), TIMEOUT)
    took = []
    try:
        for i in range(tries):
            client = persistent if i % 2 else TCPClient("127.0.0.1", port)
            start = time.monotonic()
            if client is not persistent:
                await asyncio.wait_for(client.connect(), TIMEOUT)
            reply = await client.request(b"echo", b"%d" % i, timeout=TIMEOUT)
            took.append(time.monotonic() - start)
            assert reply.body.content == b"%d" % i
            if client is not persistent:
                await client.close()
    finally:
        await persistent.close()
    return took


@pytest.mark.parametrize(
    ("mode", "count", "settle", "bound_mib"),
    [("pipeline", 20, 1.0, 200), ("partial", 3000, 1.0, 250), ("fanout", 500, 4.0, 350)],
)
async def test_a_client_is_answered_during_abuse(
    mode: str, count: int, settle: float, bound_mib: float
) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2 * count + 200 and hard >= 2 * count + 200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (2 * count + 200, hard))
    args = ["--feed"] if mode == "fanout" else []
    server = await asyncio.create_subprocess_exec(
        sys.executable, str(HERE / "abuse_server.py"), *args,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert server.stdout is not None
    assert server.stdin is not None
    port = int(await asyncio.wait_for(server.stdout.readline(), TIMEOUT))
    peers = await asyncio.create_subprocess_exec(
        sys.executable, str(HERE / "abuse_peers.py"), str(port), mode, str(count),
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert peers.stdout is not None
        assert await asyncio.wait_for(peers.stdout.readline(), 60) == b"ready\n"
        await asyncio.sleep(settle)  # the abuse at full pressure
        took = await _answered(port)
    finally:
        peers.kill()
        await peers.wait()
        server.stdin.close()
        report = json.loads(await asyncio.wait_for(server.stdout.readline(), TIMEOUT))
        await asyncio.wait_for(server.wait(), TIMEOUT)
    print(f"\n{mode} x{count}: answered in {[round(t, 3) for t in took]} s; server {report}")
    assert max(took) < 1.0, took
    assert report["peak_rss_mib"] < bound_mib, report
