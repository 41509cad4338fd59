"""Limits: frame size, connection count, idle and mid-frame timeouts."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest

from netaio_client import TCPClient
from netaio_core import (
    FrameTooLargeError,
    Header,
    Limits,
    Message,
    MessageType,
)
from netaio_server import TCPServer

from .conftest import Connect, Serve
from .support import (
    TIMEOUT,
    echo_reply,
    echo_server,
    error_reply,
    logged,
    request,
    summary,
    wait_until,
)

SHORT = 0.2  # seconds: a timeout short enough to wait for in a test


@pytest.fixture(autouse=True)
def _server_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="netaio.server")


async def test_frame_over_max_frame_size_is_refused_from_its_header(
    serve: Serve, connect: Connect, caplog: pytest.LogCaptureFixture
) -> None:
    server = await serve(echo_server(Limits(max_frame_size=1024)))
    peer = await connect(server.port)

    # Only the header is sent: the server must answer and close without
    # waiting for the 60,000 bytes it announces.
    await peer.send_bytes(Header(MessageType.REQUEST_URI, 0, 60_000, 0).encode())
    replies = [summary(m) for m in await peer.replies_until_end()]

    assert replies == [error_reply(b"frame too large")]
    assert logged(caplog, "refused: the limit is 1024")
    assert not server.clients


async def test_frame_at_max_frame_size_is_served(serve: Serve, connect: Connect) -> None:
    message = request(b"x" * 1000)
    size = len(message.encode())
    server = await serve(echo_server(Limits(max_frame_size=size)))
    peer = await connect(server.port)
    assert summary(await peer.request(message)) == echo_reply(b"x" * 1000)


async def test_client_refuses_a_frame_over_its_max_frame_size(serve: Serve) -> None:
    server = await serve(echo_server())
    client: TCPClient[Message] = TCPClient(
        "127.0.0.1", server.port, limits=Limits(max_frame_size=100)
    )
    async with client:
        await client.connect()
        await client.send(request(b"x" * 200))
        with pytest.raises(FrameTooLargeError, match="limit is 100"):
            await asyncio.wait_for(client.receive_once(), TIMEOUT)


async def test_connections_over_max_connections_are_closed_at_once(
    serve: Serve, connect: Connect, caplog: pytest.LogCaptureFixture
) -> None:
    server = await serve(echo_server(Limits(max_connections=2)))
    first, second = await connect(server.port), await connect(server.port)
    assert summary(await first.request(request(b"1"))) == echo_reply(b"1")
    assert summary(await second.request(request(b"2"))) == echo_reply(b"2")

    excess = await connect(server.port)
    with contextlib.suppress(ConnectionError):  # the server may have closed it already
        await excess.send_bytes(request(b"3").encode())
    assert await excess.wait_closed_by_server() == b""  # closed, unanswered
    assert logged(caplog, "max_connections reached")

    # The connections already served are unaffected.
    assert summary(await first.request(request(b"1 again"))) == echo_reply(b"1 again")
    assert summary(await second.request(request(b"2 again"))) == echo_reply(b"2 again")
    assert len(server.clients) == 2

    # A slot freed by a departing client is available again.
    await first.close()
    await wait_until(lambda: len(server.clients) == 1)
    third = await connect(server.port)
    assert summary(await third.request(request(b"3 again"))) == echo_reply(b"3 again")


async def test_idle_timeout_closes_a_quiet_connection_with_a_log_line(
    serve: Serve, connect: Connect, caplog: pytest.LogCaptureFixture
) -> None:
    server = await serve(echo_server(Limits(idle_timeout=SHORT)))
    peer = await connect(server.port)
    assert summary(await peer.request(request(b"hello"))) == echo_reply(b"hello")

    assert await peer.wait_closed_by_server() == b""
    assert len(logged(caplog, "idle_timeout reached")) == 1
    assert not server.clients


async def test_idle_timeout_spares_a_connection_whose_handler_is_running(
    serve: Serve, connect: Connect, caplog: pytest.LogCaptureFixture
) -> None:
    server = await serve(echo_server(Limits(idle_timeout=SHORT)))
    started, release = asyncio.Event(), asyncio.Event()

    @server.on((MessageType.REQUEST_URI, b"slow"))
    async def slow(message: Message, writer: asyncio.StreamWriter) -> Message:
        started.set()
        await release.wait()
        return request(b"done", b"slow", MessageType.RESPOND_URI)

    busy = await connect(server.port)
    await busy.send_bytes(request(b"", b"slow").encode())
    await asyncio.wait_for(started.wait(), TIMEOUT)
    # A connection opened after the slow request began is closed for idling:
    # the busy connection has then been quiet longer than idle_timeout too.
    clock = await connect(server.port)
    assert await clock.wait_closed_by_server() == b""
    release.set()

    assert summary(await busy.receive()) == (MessageType.RESPOND_URI, b"slow", b"done")
    assert summary(await busy.request(request(b"still open"))) == echo_reply(b"still open")
    assert len(logged(caplog, "idle_timeout reached")) == 1


@pytest.mark.parametrize(
    "start",
    [
        pytest.param(request(b"never finished").encode()[:12], id="known-type"),
        # A partial header is a started frame: the timeout runs from its first byte.
        pytest.param(request(b"never finished").encode()[:5], id="partial-header"),
        # A frame of an unknown type is skipped, under the same timeout.
        pytest.param(b"\x63\x00\x00\x00\x64\x00\x00\x00\x00" + bytes(50), id="unknown-type"),
    ],
)
async def test_frame_timeout_closes_a_slowloris_with_a_log_line(
    serve: Serve, connect: Connect, caplog: pytest.LogCaptureFixture, start: bytes
) -> None:
    server = await serve(echo_server(Limits(frame_timeout=SHORT)))
    quiet = await connect(server.port)
    slowloris = await connect(server.port)

    await slowloris.send_bytes(start)  # a header and a little more, then nothing
    assert await slowloris.wait_closed_by_server() == b""
    assert len(logged(caplog, "frame_timeout reached mid-frame")) == 1

    # frame_timeout runs only inside a frame: a quiet connection stays open.
    assert summary(await quiet.request(request(b"fine"))) == echo_reply(b"fine")
    assert len(server.clients) == 1


def test_limits_refuse_unsafe_values() -> None:
    for bad in (
        {"max_frame_size": 8},
        {"max_connections": 0},
        {"write_buffer_limit": 0},
        {"idle_timeout": 0},
        {"frame_timeout": -1.0},
        {"connect_timeout": 0},
        {"write_timeout": 0},
        {"shutdown_grace": -1},
        {"max_concurrent_requests": 0},
        {"max_queue": 0},
    ):
        with pytest.raises(ValueError, match=next(iter(bad))):
            Limits(**bad)


def test_default_limits_are_the_documented_ones() -> None:
    limits = Limits()
    assert limits.max_frame_size == 9 + 0xFFFF + 0xFFFF
    assert limits.max_connections == 4096
    assert limits.idle_timeout is None
    assert limits.frame_timeout == 30.0
    assert limits.write_buffer_limit == 4 * 1024 * 1024
    assert limits.write_timeout == 10.0
    assert limits.connect_timeout == 10.0
    assert limits.shutdown_grace == 5.0
    assert limits.max_concurrent_requests == 64
    assert limits.max_queue == 1024
    assert TCPServer().limits == limits
