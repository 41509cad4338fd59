"""Slow consumers: a subscriber that stops reading is dropped; the others get
every message, and the memory held for it stays bounded."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from netaio_client import TCPClient
from netaio_core import Limits, Message, MessageType
from netaio_server import TCPServer

from .conftest import Serve
from .support import TIMEOUT, echo_server, logged, request, wait_until

TOPIC = b"topic"
CONTENT_SIZE = 10_000
MAX_MESSAGES = 2000  # 20 MB: far more than the kernel buffers of a stalled socket


class Subscriber:
    """A well-behaved TCPClient subscribed to TOPIC that records every notification."""

    def __init__(self, port: int) -> None:
        self.client: TCPClient[Message] = TCPClient("127.0.0.1", port)
        self.received: list[bytes] = []
        self.task: asyncio.Task[None] | None = None
        self.client.add_handler(MessageType.NOTIFY_URI, self._record)

    def _record(self, message: Message, writer: asyncio.StreamWriter) -> None:
        self.received.append(message.body.content[:16])

    async def start(self) -> None:
        await self.client.connect()
        await self.client.send(request(b"", TOPIC, MessageType.SUBSCRIBE_URI))
        confirm = await asyncio.wait_for(self.client.receive_once(), TIMEOUT)
        assert confirm is not None
        assert confirm.header.message_type is MessageType.CONFIRM_SUBSCRIBE
        self.task = asyncio.create_task(self.client.receive_loop())

    async def wait_for_count(self, count: int) -> None:
        await wait_until(lambda: len(self.received) >= count)

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        await self.client.close_all()


async def stalled_subscriber(server: TCPServer[Any]) -> tuple[socket.socket, asyncio.StreamWriter]:
    """A raw socket with a tiny receive buffer that subscribes to TOPIC and
    then never reads; returns it and the server's writer for it."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    before = set(server.clients)
    await asyncio.wait_for(loop.sock_connect(sock, ("127.0.0.1", server.port)), TIMEOUT)
    await loop.sock_sendall(sock, request(b"", TOPIC, MessageType.SUBSCRIBE_URI).encode())
    await wait_until(lambda: len(server.subscriptions.get(TOPIC, ())) == len(before) + 1)
    (writer,) = server.subscriptions[TOPIC] - before
    return sock, writer


@pytest.fixture
async def subscribers() -> AsyncIterator[Callable[[int, int], Awaitable[list[Subscriber]]]]:
    made: list[Subscriber] = []

    async def make(port: int, count: int) -> list[Subscriber]:
        for _ in range(count):
            subscriber = Subscriber(port)
            made.append(subscriber)
            await subscriber.start()
        return made[-count:]

    yield make
    for subscriber in made:
        await subscriber.close()


@pytest.mark.parametrize(
    ("limits", "reason", "send"),
    [
        pytest.param(
            Limits(write_buffer_limit=32 * 1024),
            "write_buffer_limit exceeded (slow consumer)",
            "notify",
            id="notify-buffer-limit",
        ),
        pytest.param(
            Limits(write_buffer_limit=32 * 1024),
            "write_buffer_limit exceeded (slow consumer)",
            "broadcast",
            id="broadcast-buffer-limit",
        ),
    ],
)
async def test_stalled_subscriber_is_dropped_and_others_get_every_message(
    serve: Serve,
    subscribers: Callable[[int, int], Awaitable[list[Subscriber]]],
    caplog: pytest.LogCaptureFixture,
    limits: Limits,
    reason: str,
    send: str,
) -> None:
    caplog.set_level(logging.INFO, logger="netaio.server")
    server = await serve(echo_server(limits))
    good = await subscribers(server.port, 2)
    sock, stalled = await stalled_subscriber(server)
    try:
        sent: list[bytes] = []
        peak = 0
        for number in range(MAX_MESSAGES):
            tag = b"%016d" % number
            message = request(tag + bytes(CONTENT_SIZE - 16), TOPIC, MessageType.NOTIFY_URI)
            if send == "notify":
                await asyncio.wait_for(server.notify(TOPIC, message), TIMEOUT)
            else:
                await asyncio.wait_for(server.broadcast(message), TIMEOUT)
            sent.append(tag)
            if stalled.is_closing():
                break
            # Memory held for the stalled peer never passes the limit.
            peak = max(peak, stalled.transport.get_write_buffer_size())
            assert peak <= limits.write_buffer_limit
        else:
            pytest.fail("the stalled subscriber was never dropped")

        assert logged(caplog, reason)
        # The others received every message, in order, and still do.
        final = request(b"%016d" % len(sent), TOPIC, MessageType.NOTIFY_URI)
        await asyncio.wait_for(server.notify(TOPIC, final), TIMEOUT)
        sent.append(final.body.content)
        for subscriber in good:
            await subscriber.wait_for_count(len(sent))
            assert subscriber.received == sent
        # The dropped peer left every collection.
        await wait_until(lambda: stalled not in server.clients)
        assert server.subscriptions[TOPIC] == set(server.clients)
        assert len(server.clients) == 2
    finally:
        sock.close()


async def test_a_subscriber_that_stops_reading_is_dropped_after_write_timeout(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    """notify() never waits for a stalled subscriber; once its socket stops
    taking bytes, its connection is dropped after write_timeout even if
    nothing more is published."""
    caplog.set_level(logging.INFO, logger="netaio.server")
    server = await serve(echo_server(Limits(write_timeout=0.3)))
    sock, stalled = await stalled_subscriber(server)
    loop = asyncio.get_running_loop()
    try:
        message = request(bytes(CONTENT_SIZE), TOPIC, MessageType.NOTIFY_URI)
        for _ in range(MAX_MESSAGES):
            started = loop.time()
            await server.notify(TOPIC, message)
            assert loop.time() - started < 1.0  # returns at once, stalled peer or not
            if stalled.is_closing() or stalled.transport.get_write_buffer_size() > 64 * 1024:
                break
        else:
            pytest.fail("the stalled subscriber's buffer never filled")
        await wait_until(lambda: stalled not in server.clients)
        assert logged(caplog, "write_timeout reached (slow consumer)")
        assert TOPIC not in server.subscriptions
    finally:
        sock.close()
