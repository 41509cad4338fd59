"""TCPClient.receive_loop: runs until cancelled or the connection ends."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from client_peer import TIMEOUT, RawConnection, RawServer, message, received

from netaio_client import TCPClient
from netaio_core import (
    AuthFieldsProtocol,
    BodyProtocol,
    Message,
    MessageProtocol,
    MessageType,
    NotConnectedError,
)


async def loop_client(
    raw_server: Callable[[], Awaitable[RawServer]], clients: list[TCPClient[Any]], **kwargs: Any
) -> tuple[RawServer, TCPClient[Message], RawConnection]:
    server = await raw_server()
    client = TCPClient(port=server.port, **kwargs)
    clients.append(client)
    await client.connect()
    return server, client, await server.accept()


async def test_loop_dispatches_every_message_until_the_connection_ends(raw_server, clients):
    _, client, peer = await loop_client(raw_server, clients)
    got: list[bytes] = []
    client.add_handler(MessageType.NOTIFY_URI, lambda m, w: got.append(m.body.content))

    loop = asyncio.create_task(client.receive_loop())
    for i in range(5):
        await peer.send(message(b"n", b"%d" % i, MessageType.NOTIFY_URI))
    await peer.close()

    assert await asyncio.wait_for(loop, TIMEOUT) is None  # returns, does not raise
    assert got == [b"0", b"1", b"2", b"3", b"4"]


async def test_loop_runs_until_cancelled(raw_server, clients):
    _, client, peer = await loop_client(raw_server, clients)
    first = asyncio.Event()

    @client.on(MessageType.NOTIFY_URI)
    def on_notify(msg: Message, writer: asyncio.StreamWriter) -> None:
        first.set()

    loop = asyncio.create_task(client.receive_loop())
    await peer.send(message(b"n", b"", MessageType.NOTIFY_URI))
    await asyncio.wait_for(first.wait(), TIMEOUT)
    assert not loop.done()  # still waiting for the next message

    loop.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(loop, TIMEOUT)
    # The connection stays usable after the loop is cancelled.
    await peer.send(message(b"after", b"x"))
    assert (await received(client)).body.uri == b"after"


async def test_loop_logs_a_handler_exception_and_goes_on(raw_server, clients, caplog):
    _, client, peer = await loop_client(raw_server, clients)
    got: list[bytes] = []

    @client.on(MessageType.NOTIFY_URI)
    async def fragile(msg: Message, writer: asyncio.StreamWriter) -> None:
        if msg.body.content == b"bad":
            raise ValueError("handler broke on purpose")
        got.append(msg.body.content)

    with caplog.at_level(logging.ERROR, logger="netaio.client"):
        loop = asyncio.create_task(client.receive_loop())
        for content in (b"before", b"bad", b"after"):
            await peer.send(message(b"n", content, MessageType.NOTIFY_URI))
        await peer.close()
        await asyncio.wait_for(loop, TIMEOUT)

    assert got == [b"before", b"after"]
    (failure,) = [r for r in caplog.records if r.exc_info]
    assert failure.name == "netaio.client"
    assert str(failure.exc_info[1]) == "handler broke on purpose"


async def test_loop_skips_messages_failing_checksum_or_auth(raw_server, clients):
    class Reject:
        def make(self, auth_fields: AuthFieldsProtocol, body: BodyProtocol) -> None:
            auth_fields.fields["ok"] = b"1"

        def check(self, auth_fields: AuthFieldsProtocol, body: BodyProtocol) -> bool:
            return auth_fields.fields.get("ok") == b"1"

        def error(self) -> MessageProtocol:
            return message(b"ERROR", b"auth failed", MessageType.AUTH_ERROR)

    _, client, peer = await loop_client(raw_server, clients, auth_plugin=Reject())
    got: list[bytes] = []
    client.add_handler(MessageType.NOTIFY_URI, lambda m, w: got.append(m.body.content))
    loop = asyncio.create_task(client.receive_loop())

    bad_sum = bytearray(message(b"n", b"corrupt", MessageType.NOTIFY_URI).encode())
    bad_sum[-1] ^= 0x10
    await peer.send_bytes(bytes(bad_sum))
    await peer.send(message(b"n", b"unsigned", MessageType.NOTIFY_URI))
    signed = message(b"n", b"signed", MessageType.NOTIFY_URI)
    signed.auth_data.fields["ok"] = b"1"
    await peer.send(signed)
    await peer.close()
    await asyncio.wait_for(loop, TIMEOUT)

    assert got == [b"signed"]


async def test_loop_does_not_spin_when_the_stream_cannot_be_read(raw_server, clients):
    """A read that fails for a reason other than a handler (here a second
    reader on the same connection) ends the loop instead of retrying at once
    forever, which would block the event loop."""

    class Spinning(BaseException):
        pass

    _, client, _ = await loop_client(raw_server, clients)
    errors = 0

    class CountingHandler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            nonlocal errors
            if record.levelno >= logging.ERROR:
                errors += 1
                if errors > 50:
                    raise Spinning("receive_loop retried a failing read in a busy loop")

    counter = CountingHandler()
    logger = logging.getLogger("tests.client.spin")
    logger.addHandler(counter)
    client.set_logger(logger)

    other_reader = asyncio.create_task(client.receive_once())
    await asyncio.sleep(0)  # let it start waiting on the stream
    try:
        await asyncio.wait_for(client.receive_loop(), TIMEOUT)
    finally:
        logger.removeHandler(counter)
        other_reader.cancel()
        with pytest.raises(asyncio.CancelledError):
            await other_reader
    assert errors == 1


async def test_loop_on_server_not_connected_to_raises_at_once(clients):
    client = TCPClient(port=1)
    clients.append(client)
    loop = asyncio.create_task(client.receive_loop())
    with pytest.raises(NotConnectedError, match=r"127\.0\.0\.1:1\b"):
        await asyncio.wait_for(loop, TIMEOUT)
