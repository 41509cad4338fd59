"""Abuse that costs the server memory or time, at a scale for every test run
(the full scale, with the server in its own process, is in tests/load):
peers that stop partway through frames, subscribers that stop reading, and
peers that pipeline without reading. Past ``Limits.max_partial_bytes`` /
``max_unsent_bytes`` the connections holding the most are dropped; a
well-behaved client is answered throughout."""

from __future__ import annotations

import asyncio
import socket
import sys
import time
from typing import Any

from netaio_client import TCPClient
from netaio_core import Body, Limits, Message, MessageType
from netaio_server import DropReason, TCPServer

from .conftest import Serve
from .support import ECHO_URI, TIMEOUT, echo_server, request

FRAME_BODY = 60_000
# Well under a second on an idle machine (tests/load/test_abuse.py asserts
# that, with the server in its own process); this bound leaves room for a
# busy CI machine and still fails without the budgets and the dispatch turn
# (requests then time out: 5 s).
ANSWERED_WITHIN = 3.0


async def well_behaved_round_trips(port: int, tries: int = 6) -> list[float]:
    """Seconds per request: alternately on a fresh and a persistent connection."""
    persistent: TCPClient[Message] = TCPClient("127.0.0.1", port)
    await asyncio.wait_for(persistent.connect(), TIMEOUT)
    took = []
    try:
        for i in range(tries):
            client = persistent if i % 2 else TCPClient("127.0.0.1", port)
            start = time.monotonic()
            if client is not persistent:
                await asyncio.wait_for(client.connect(), TIMEOUT)
            reply = await client.request(ECHO_URI, b"%d" % i, timeout=TIMEOUT)
            took.append(time.monotonic() - start)
            assert reply.body.content == b"%d" % i
            if client is not persistent:
                await client.close()
    finally:
        await persistent.close()
    return took


def reasons(server: TCPServer[Any]) -> list[DropReason]:
    seen: list[DropReason] = []
    server.on_drop(lambda connection, reason: seen.append(reason))
    return seen


async def test_unfinished_frames_past_the_budget_drop_the_biggest_holders(serve: Serve) -> None:
    budget = 1024 * 1024
    server = echo_server(Limits(max_partial_bytes=budget))
    seen = reasons(server)
    port = (await serve(server)).port
    frame = request(b"y" * FRAME_BODY, ECHO_URI).encode()
    holders = []
    try:
        for _ in range(40):  # 40 x 60 KB: 2.3 MiB unfinished
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(frame[:-10])
            holders.append((reader, writer))
        for _, writer in holders:
            await writer.drain()
        while len(seen) < 20:  # (2.3 MiB - 0.9 MiB) / 60 KB
            await asyncio.wait_for(holders[-1][0].read(0), TIMEOUT)
            await asyncio.sleep(0.01)
        took = await well_behaved_round_trips(port)
        assert max(took) < ANSWERED_WITHIN, took
        assert server._partial.total <= budget
        assert set(seen) == {DropReason.MAX_PARTIAL_BYTES}
    finally:
        for _, writer in holders:
            writer.transport.abort()


async def test_subscribers_that_stop_reading_are_dropped_past_the_unsent_budget(
    serve: Serve,
) -> None:
    budget = 1024 * 1024
    server = echo_server(Limits(max_unsent_bytes=budget))
    seen = reasons(server)

    @server.on_connect
    def small_kernel_buffer(writer: asyncio.StreamWriter) -> None:
        # Loopback sockets buffer megabytes in the kernel; make the server
        # hold what its peers do not take instead.
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8192)

    port = (await serve(server)).port
    stalled = []
    try:
        for _ in range(30):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            writer.write(request(b"", b"feed", MessageType.SUBSCRIBE_URI).encode())
            await writer.drain()
            await asyncio.wait_for(reader.read(32), TIMEOUT)  # the confirmation; no more reads
            stalled.append(writer)
        news = Message.prepare(Body.prepare(b"z" * FRAME_BODY, b"feed"), MessageType.NOTIFY_URI)
        for _ in range(200):  # bounded: 200 x 30 x 60 KB would be 360 MB unsent
            await server.notify(b"feed", news)
            assert server._unsent.total <= budget
            if len(seen) >= 20:
                break
        took = await well_behaved_round_trips(port)
        assert max(took) < ANSWERED_WITHIN, took
        assert len(seen) >= 20
        assert set(seen) == {DropReason.MAX_UNSENT_BYTES}
    finally:
        for writer in stalled:
            writer.transport.abort()


PIPELINER = """
import socket, sys, threading
port, frame, n = int(sys.argv[1]), bytes.fromhex(sys.argv[2]), int(sys.argv[3])
chunk = frame * 500
def flood():
    s = socket.create_connection(("127.0.0.1", port))
    try:
        while True:
            s.sendall(chunk)
    except OSError:
        pass
threads = [threading.Thread(target=flood, daemon=True) for _ in range(n)]
for t in threads:
    t.start()
print("flooding", flush=True)
sys.stdin.read()
"""


async def test_peers_pipelining_without_reading_do_not_starve_a_client(serve: Serve) -> None:
    """Pipelining peers (in a process of their own, as real ones would be)
    keep the server busy; each connection dispatches at most
    ``FRAMES_PER_TURN`` frames before the others get their turn."""
    server = echo_server()
    port = (await serve(server)).port
    frame = request(b"x" * 100, ECHO_URI).encode()
    flood = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        PIPELINER,
        str(port),
        frame.hex(),
        "8",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert flood.stdout is not None
        assert await asyncio.wait_for(flood.stdout.readline(), TIMEOUT) == b"flooding\n"
        await asyncio.sleep(0.2)  # let the flood build up
        took = await well_behaved_round_trips(port)
        assert max(took) < ANSWERED_WITHIN, took
    finally:
        flood.kill()
        await asyncio.wait_for(flood.wait(), TIMEOUT)
