"""Helpers of the TCPServer tests: raw peers and messages.

A raw peer is a bare asyncio connection that frames messages with
netaio_core only, so these tests check the server against the wire format
rather than against our own client.
"""

from __future__ import annotations

import asyncio
import contextlib

from netaio_core import Body, Message, MessageProtocol, MessageReader, MessageType

TIMEOUT = 5.0


def request(
    uri: bytes = b"1",
    content: bytes = b"",
    message_type: MessageType = MessageType.REQUEST_URI,
) -> Message:
    """A fresh message of the default classes."""
    return Message.prepare(Body.prepare(content, uri), message_type)


class RawPeer:
    """One loopback connection speaking the wire format through netaio_core."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.frames: MessageReader[Message] = MessageReader()

    @classmethod
    async def open(cls, port: int) -> RawPeer:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), TIMEOUT)
        return cls(reader, writer)

    async def send_bytes(self, data: bytes) -> None:
        self.writer.write(data)
        await asyncio.wait_for(self.writer.drain(), TIMEOUT)

    async def send(self, message: MessageProtocol) -> None:
        await self.send_bytes(message.encode())

    async def receive(self) -> Message:
        """The next message, read within TIMEOUT seconds."""
        return await asyncio.wait_for(self.frames.read(self.reader), TIMEOUT)

    async def request(self, message: MessageProtocol) -> Message:
        await self.send(message)
        return await self.receive()

    async def read_to_end(self) -> bytes:
        """Every byte until the server closes the connection (or resets it)."""
        try:
            return await asyncio.wait_for(self.reader.read(), TIMEOUT)
        except ConnectionResetError:
            return b""

    async def close(self) -> None:
        if not self.writer.is_closing():
            self.writer.close()
        with contextlib.suppress(OSError):  # a reset peer, or a wait that timed out
            await asyncio.wait_for(self.writer.wait_closed(), TIMEOUT)


class TaskRecorder:
    """A handler that records each connection's writer, so a test can wait
    until the server is done with a connection instead of sleeping."""

    def __init__(self) -> None:
        self.tasks: dict[asyncio.StreamWriter, asyncio.StreamWriter] = {}

    def __call__(self, message: Message, writer: asyncio.StreamWriter) -> Message:
        self.tasks[writer] = writer
        return request(b"recorded", b"", MessageType.OK)

    async def wait_done(self, writer: asyncio.StreamWriter) -> None:
        """Wait (bounded) until the connection of ``writer`` is finished."""
        try:
            await asyncio.wait_for(writer.wait_closed(), TIMEOUT)
        except asyncio.TimeoutError:
            raise AssertionError("the server did not finish with the connection in time") from None
        assert writer.is_closing()
