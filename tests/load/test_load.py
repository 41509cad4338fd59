"""1,000 concurrent client connections, each doing 100 request/response
exchanges with one server: every response arrives and is correct.

Run with ``nox -s load`` (or ``pytest -m load -s``); elapsed time and the
process's peak memory are printed.
"""

from __future__ import annotations

import asyncio
import resource
import sys
import time

import pytest

from netaio_client import TCPClient
from netaio_core import Body, Message, MessageType
from netaio_server import TCPServer

CONNECTIONS = 1_000
EXCHANGES = 100
CONNECTING_AT_ONCE = 100  # below the listen backlog, so no SYN is dropped and retried
URI = b"echo"

pytestmark = [pytest.mark.load, pytest.mark.timeout(600)]


def echo(message: Message, writer: asyncio.StreamWriter) -> Message:
    return Message.prepare(Body.prepare(message.body.content, URI), MessageType.RESPOND_URI)


async def exchanges(client: TCPClient[Message], number: int) -> int:
    """EXCHANGES requests on one connection, each answer checked; the count."""
    answered = 0
    for sequence in range(EXCHANGES):
        content = b"%d/%d" % (number, sequence)
        await client.send(Message.prepare(Body.prepare(content, URI)))
        reply = await client.receive_once()
        assert reply is not None
        assert reply.header.message_type is MessageType.RESPOND_URI
        assert reply.body.content == content
        answered += 1
    return answered


def peak_memory_mib() -> float:
    """Peak resident memory of this process (ru_maxrss: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024 if sys.platform == "darwin" else 1024)


async def test_thousand_connections_hundred_exchanges_each() -> None:
    server: TCPServer[Message] = TCPServer(host="127.0.0.1", port=0)
    server.add_handler((MessageType.REQUEST_URI, URI), echo)
    gate = asyncio.Semaphore(CONNECTING_AT_ONCE)

    async def connect(client: TCPClient[Message]) -> None:
        async with gate:
            await client.connect()

    async with server:
        clients: list[TCPClient[Message]] = [
            TCPClient("127.0.0.1", server.port) for _ in range(CONNECTIONS)
        ]
        try:
            started = time.perf_counter()
            await asyncio.wait_for(asyncio.gather(*(connect(c) for c in clients)), 120)
            connected = time.perf_counter()
            assert len(server.clients) == CONNECTIONS

            counts = await asyncio.wait_for(
                asyncio.gather(*(exchanges(c, n) for n, c in enumerate(clients))), 480
            )
            finished = time.perf_counter()
            assert counts == [EXCHANGES] * CONNECTIONS
            assert len(server.clients) == CONNECTIONS  # nobody was dropped
        finally:
            await asyncio.gather(*(c.close_all() for c in clients))

    total = CONNECTIONS * EXCHANGES
    print(
        f"\nload: {CONNECTIONS} connections x {EXCHANGES} exchanges = {total} round trips"
        f"\n  connecting: {connected - started:.2f} s"
        f"\n  exchanging: {finished - connected:.2f} s"
        f" ({total / (finished - connected):,.0f} round trips/s)"
        f"\n  peak memory (ru_maxrss, whole process): {peak_memory_mib():.1f} MiB"
    )
