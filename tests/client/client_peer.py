"""Helpers of the TCPClient tests: a raw loopback server and messages.

The raw server is bare ``asyncio.start_server`` framing messages with
netaio_core only, so these tests check the client against the wire format
rather than against our own server.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from netaio_client import TCPClient
from netaio_core import Body, Message, MessageProtocol, MessageReader, MessageType

TIMEOUT = 5.0


def message(
    uri: bytes = b"1",
    content: bytes = b"",
    message_type: MessageType = MessageType.RESPOND_URI,
) -> Message:
    """A fresh message of the default classes."""
    return Message.prepare(Body.prepare(content, uri), message_type)


async def received(client: TCPClient[Any], server: tuple[str, int] | None = None) -> Any:
    """``client.receive_once(server)`` within TIMEOUT; fails the test on None."""
    result = await asyncio.wait_for(client.receive_once(server), TIMEOUT)
    assert result is not None, "receive_once discarded the message"
    return result


class RawConnection:
    """The server's end of one connection from a client."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.frames: MessageReader[Message] = MessageReader()

    async def send_bytes(self, data: bytes) -> None:
        self.writer.write(data)
        await asyncio.wait_for(self.writer.drain(), TIMEOUT)

    async def send(self, message: MessageProtocol) -> None:
        await self.send_bytes(message.encode())

    async def receive(self) -> Message:
        return await asyncio.wait_for(self.frames.read(self.reader), TIMEOUT)

    async def at_eof(self) -> bool:
        """True once the client has closed its end (bounded wait)."""
        try:
            rest = await asyncio.wait_for(self.reader.read(), TIMEOUT)
        except ConnectionResetError:
            return True
        return rest == b"" and self.reader.at_eof()

    async def close(self) -> None:
        if not self.writer.is_closing():
            self.writer.close()
        with contextlib.suppress(OSError):  # a reset peer, or a wait that timed out
            await asyncio.wait_for(self.writer.wait_closed(), TIMEOUT)


class RawServer:
    """A listening socket on 127.0.0.1 that hands out accepted connections."""

    def __init__(self) -> None:
        self.port = 0
        self.accepted: asyncio.Queue[RawConnection] = asyncio.Queue()
        self.connections: list[RawConnection] = []
        self._server: asyncio.Server | None = None

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    async def start(self) -> RawServer:
        self._server = await asyncio.start_server(self._on_connect, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = RawConnection(reader, writer)
        self.connections.append(connection)
        await self.accepted.put(connection)

    async def accept(self) -> RawConnection:
        """The next connection a client opened (bounded wait)."""
        return await asyncio.wait_for(self.accepted.get(), TIMEOUT)

    async def close(self) -> None:
        for connection in self.connections:
            await connection.close()
        if self._server is not None:
            self._server.close()
            await asyncio.wait_for(self._server.wait_closed(), TIMEOUT)
