"""Helpers of the reliability tests: an echo service, raw peers and bounded waits."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Hashable
from typing import Any

import pytest

from netaio_core import (
    Body,
    ConnectionClosedError,
    Limits,
    Message,
    MessageReader,
    MessageType,
)
from netaio_server import TCPServer

TIMEOUT = 5.0
"""Upper bound of every wait: a test that hits it has failed, not waited."""

ECHO_URI = b"echo"


def request(
    content: bytes, uri: bytes = ECHO_URI, message_type: MessageType = MessageType.REQUEST_URI
) -> Message:
    """A fresh message of the default classes."""
    return Message.prepare(Body.prepare(content, uri), message_type)


def summary(message: Message) -> tuple[MessageType, bytes, bytes]:
    """What a test compares of a reply: type, uri and content."""
    return message.header.message_type, message.body.uri, message.body.content


def echo_reply(content: bytes) -> tuple[MessageType, bytes, bytes]:
    """The summary of the echo service's answer to ``request(content)``."""
    return MessageType.RESPOND_URI, ECHO_URI, content


def error_reply(text: bytes) -> tuple[MessageType, bytes, bytes]:
    """The summary of the server's default error reply saying ``text``."""
    kind = MessageType.NOT_FOUND if b"not found" in text else MessageType.ERROR
    return kind, b"ERROR", text


def echo_server(
    limits: Limits | None = None, host: str = "127.0.0.1", **kwargs: Any
) -> TCPServer[Message]:
    """A server on a free port that echoes ``(REQUEST_URI, b"echo")`` as
    RESPOND_URI and subscribes a client to the uri of a SUBSCRIBE_URI message
    (answered by CONFIRM_SUBSCRIBE); anything else gets NOT_FOUND."""
    server: TCPServer[Message] = TCPServer(host=host, port=0, limits=limits, **kwargs)

    @server.on((MessageType.REQUEST_URI, ECHO_URI))
    def echo(message: Message, writer: asyncio.StreamWriter) -> Message:
        return request(message.body.content, ECHO_URI, MessageType.RESPOND_URI)

    @server.on(MessageType.SUBSCRIBE_URI)
    def subscribe(message: Message, writer: asyncio.StreamWriter) -> Message:
        server.subscribe(message.body.uri, writer)
        return request(b"", message.body.uri, MessageType.CONFIRM_SUBSCRIBE)

    return server


def subscribers(server: TCPServer[Any]) -> dict[Hashable, set[asyncio.StreamWriter]]:
    """A copy of the server's subscriptions, for comparisons."""
    return {key: set(writers) for key, writers in server.subscriptions.items()}


async def wait_until(condition: Callable[[], bool]) -> None:
    """Wait (at most TIMEOUT seconds) until ``condition()`` holds: for state
    that the server changes with no event to wait on."""

    async def poll() -> None:
        while not condition():  # noqa: ASYNC110 - no event exists for this state
            await asyncio.sleep(0.005)

    await asyncio.wait_for(poll(), TIMEOUT)


def logged(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    """Messages of the ``netaio.server`` logger that contain ``text``."""
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "netaio.server" and text in record.getMessage()
    ]


class RawPeer:
    """A bare loopback connection that frames with netaio_core only, so the
    server is checked against the wire format, not against our client."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.frames: MessageReader[Message] = MessageReader()

    @classmethod
    async def open(cls, port: int, host: str = "127.0.0.1", **kwargs: Any) -> RawPeer:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, **kwargs), TIMEOUT
        )
        return cls(reader, writer)

    async def send_bytes(self, data: bytes) -> None:
        self.writer.write(data)
        await asyncio.wait_for(self.writer.drain(), TIMEOUT)

    async def receive(self) -> Message:
        """The next message, read within TIMEOUT seconds."""
        return await asyncio.wait_for(self.frames.read(self.reader), TIMEOUT)

    async def request(self, message: Message) -> Message:
        return await self.request_bytes(message.encode())

    async def request_bytes(self, data: bytes) -> Message:
        await self.send_bytes(data)
        return await self.receive()

    async def replies_until_end(self) -> list[Message]:
        """Every message until the server ends the connection cleanly
        (between frames); fails on a reset or a torn frame."""
        replies: list[Message] = []
        while True:
            try:
                replies.append(await self.receive())
            except ConnectionClosedError as exc:
                if exc.partial:
                    raise AssertionError("the server tore a frame") from exc
                return replies

    async def wait_closed_by_server(self) -> bytes:
        """Wait until the server ends the connection (EOF or reset); returns
        the bytes that were still unread."""
        try:
            return await asyncio.wait_for(self.reader.read(), TIMEOUT)
        except ConnectionResetError:
            return b""

    async def close(self) -> None:
        if not self.writer.is_closing():
            self.writer.close()
        with contextlib.suppress(OSError):
            await asyncio.wait_for(self.writer.wait_closed(), TIMEOUT)
