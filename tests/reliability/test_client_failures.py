"""The client facing a server that does not answer, vanishes or tears a frame."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, NoReturn

import pytest

from netaio_client import TCPClient
from netaio_core import ConnectionClosedError, Limits, Message, MessageType

from .support import TIMEOUT, request, summary

Script = Callable[[bytes], Awaitable[int]]


@pytest.fixture
def full_backlog() -> Iterator[int]:
    """The port of a listening socket that never accepts and whose accept
    queue is already full: the kernel drops further SYNs, so a connect hangs."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    try:
        for _ in range(3):  # backlog 0 admits one; the others wait in SYN_SENT
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
            fillers.append(filler)
        yield port
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


async def test_connect_times_out_against_a_full_backlog(full_backlog: int) -> None:
    client: TCPClient[Message] = TCPClient("127.0.0.1", full_backlog)
    expected = re.escape(f"connecting to 127.0.0.1:{full_backlog} timed out after 0.2s")
    with pytest.raises(TimeoutError, match=expected):
        await asyncio.wait_for(client.connect(timeout=0.2), TIMEOUT)
    assert not client.hosts


async def test_connect_timeout_defaults_to_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    started = asyncio.Event()

    async def never_connects(*args: Any, **kwargs: Any) -> NoReturn:
        started.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    monkeypatch.setattr(asyncio.get_running_loop(), "create_connection", never_connects)
    client: TCPClient[Message] = TCPClient("127.0.0.1", 9, limits=Limits(connect_timeout=0.1))
    with pytest.raises(TimeoutError, match=re.escape("timed out after 0.1s")):
        await asyncio.wait_for(client.connect(), TIMEOUT)
    assert started.is_set()
    assert not client.hosts


async def test_connect_to_a_closed_port_is_refused() -> None:
    with socket.socket() as placeholder:  # a port that surely has no listener
        placeholder.bind(("127.0.0.1", 0))
        port = placeholder.getsockname()[1]
        client: TCPClient[Message] = TCPClient("127.0.0.1", port)
        with pytest.raises(ConnectionRefusedError):
            await asyncio.wait_for(client.connect(), TIMEOUT)
    assert not client.hosts


@pytest.fixture
async def scripted_server() -> AsyncIterator[Script]:
    """``await serve_bytes(data)``: a port whose server writes ``data`` to
    each connection, then closes it; the answer is the port."""
    servers: list[asyncio.Server] = []

    async def serve_bytes(data: bytes) -> int:
        async def speak(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(data)
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

        server = await asyncio.start_server(speak, "127.0.0.1", 0)
        servers.append(server)
        port: int = server.sockets[0].getsockname()[1]
        return port

    yield serve_bytes
    for server in servers:
        server.close()
        await server.wait_closed()


FRAME = request(b"a complete frame", b"x", MessageType.NOTIFY_URI).encode()


@pytest.mark.parametrize(
    "cut", [pytest.param(5, id="mid-header"), pytest.param(len(FRAME) - 3, id="mid-body")]
)
async def test_peer_closing_mid_frame_is_a_clear_error(scripted_server: Script, cut: int) -> None:
    port = await scripted_server(FRAME + FRAME[:cut])
    client: TCPClient[Message] = TCPClient("127.0.0.1", port)
    async with client:
        await client.connect()
        whole = await asyncio.wait_for(client.receive_once(), TIMEOUT)
        assert whole is not None
        assert summary(whole) == (MessageType.NOTIFY_URI, b"x", b"a complete frame")
        with pytest.raises(ConnectionClosedError, match="middle of a frame") as torn:
            await asyncio.wait_for(client.receive_once(), TIMEOUT)
        assert torn.value.partial is True


async def test_receive_once_at_end_of_stream_raises_connection_closed(
    scripted_server: Script,
) -> None:
    port = await scripted_server(FRAME)
    client: TCPClient[Message] = TCPClient("127.0.0.1", port)
    async with client:
        await client.connect()
        assert await asyncio.wait_for(client.receive_once(), TIMEOUT) is not None
        for _ in range(2):  # and again: it never blocks on a finished stream
            with pytest.raises(ConnectionClosedError) as ended:
                await asyncio.wait_for(client.receive_once(), TIMEOUT)
            assert ended.value.partial is False
    assert "ConnectionClosedError" in (TCPClient.receive_once.__doc__ or "")


@pytest.mark.parametrize(
    ("data", "partial"), [(FRAME, False), (FRAME + FRAME[:12], True)], ids=["clean", "torn"]
)
async def test_receive_loop_returns_when_the_stream_ends(
    scripted_server: Script, caplog: pytest.LogCaptureFixture, data: bytes, partial: bool
) -> None:
    caplog.set_level(logging.INFO, logger="netaio.client")
    port = await scripted_server(data)
    client: TCPClient[Message] = TCPClient("127.0.0.1", port)
    seen: list[bytes] = []
    client.add_handler(
        MessageType.NOTIFY_URI, lambda message, writer: seen.append(message.body.content)
    )
    async with client:
        await client.connect()
        await asyncio.wait_for(client.receive_loop(), TIMEOUT)  # returns, does not raise
    assert seen == [b"a complete frame"]
    ended = [r.getMessage() for r in caplog.records if "ended" in r.getMessage()]
    assert len(ended) == 1
    assert ("middle of a frame" in ended[0]) is partial
